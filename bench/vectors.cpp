/*  =========================================================================
    bench/vectors.cpp - vectord's index against hnswlib used directly and
    exact search, in one run (built and run by bench/vectors.sh)

    vectors [--count N] [--dim D] [--queries Q] [--runs R] [--dir DIR]

    Data: N + Q clustered vectors (seeded: 1000 centres uniform in [-1, 1],
    Gaussian spread 0.35), cosine, M 16, ef_construction 200.
    - exact: brute-force scan of the Q queries (the ground truth) -> QPS
    - direct: hnswlib::HierarchicalNSW built single-threaded with addPoint
      -> build time, adds/s; search at ef 40/64/128 -> QPS, recall@10
    - ours: lh_vindex (vectord's index: every batch of 500 committed to
      LMDB with fsync, then the graph through the C shim) -> build time,
      adds/s; lh_vindex_search (ids and metadata read back from LMDB, the
      answer packed as msgpack) at ef 40/64/128 -> QPS, recall@10;
      bytes per vector; restart: graph snapshot saved, 1000 more adds
      logged, the index closed, reopened and restored from the snapshot
      + log -> time.
    Searches are single-threaded, ours and direct interleaved A B A B;
    each figure is the median of R runs. Prints a markdown table.
    =========================================================================
*/

#include <hnswlib/hnswlib.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>
#include <unistd.h>
#include <sys/stat.h>

extern "C" {
#include "lh_vindex.h"
}

static double
s_now ()
{
    return std::chrono::duration<double> (std::chrono::steady_clock::now ().time_since_epoch ()).count ();
}

static uint64_t s_state = 88172645463325252ULL;
static uint64_t
s_rand ()
{
    s_state ^= s_state << 13;
    s_state ^= s_state >> 7;
    s_state ^= s_state << 17;
    return s_state;
}
static double
s_uniform ()
{
    return (double) (s_rand () >> 11) / (double) (1ULL << 53);
}
static double
s_gauss ()
{
    double u = s_uniform () + 1e-12, v = s_uniform ();
    return sqrt (-2 * log (u)) * cos (2 * M_PI * v);
}

static long
s_rss_kib ()
{
    FILE *file = fopen ("/proc/self/status", "r");
    char line [256];
    long kib = 0;
    while (file && fgets (line, sizeof (line), file))
        if (strncmp (line, "VmRSS:", 6) == 0)
            kib = atol (line + 6);
    if (file)
        fclose (file);
    return kib;
}

static double
s_median (std::vector<double> values)
{
    std::sort (values.begin (), values.end ());
    return values [values.size () / 2];
}

//  Normalised copy (cosine through inner product, as the shim does)
static void
s_normalise (const float *in, float *out, size_t dim)
{
    double norm = 0;
    for (size_t i = 0; i < dim; i++)
        norm += (double) in [i] * in [i];
    float scale = (float) (1.0 / sqrt (norm));
    for (size_t i = 0; i < dim; i++)
        out [i] = in [i] * scale;
}

static double
s_recall (const std::vector<std::vector<uint64_t>> &found,
          const std::vector<std::vector<uint64_t>> &truth)
{
    size_t hits = 0, total = 0;
    for (size_t q = 0; q < truth.size (); q++) {
        for (uint64_t label : found [q])
            if (std::find (truth [q].begin (), truth [q].end (), label) != truth [q].end ())
                hits++;
        total += truth [q].size ();
    }
    return (double) hits / (double) total;
}

//  Labels of a packed vindex search answer ([{id: "N", ...}])
static std::vector<uint64_t>
s_ids (lh_pack_t *pack)
{
    size_t size;
    const char *data = (const char *) lh_pack_data (pack, &size);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    msgpack_object object;
    std::vector<uint64_t> ids;
    if (msgpack_unpack (data, size, NULL, &zone, &object) == MSGPACK_UNPACK_SUCCESS
    &&  object.type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < object.via.array.size; i++) {
            const char *text;
            size_t text_size;
            if (lh_obj_str (&object.via.array.ptr [i], "id", &text, &text_size))
                ids.push_back (std::stoull (std::string (text, text_size)));
        }
    msgpack_zone_destroy (&zone);
    return ids;
}

int
main (int argc, char *argv [])
{
    size_t count = 100000, dim = 768, queries = 200, runs = 3;
    std::string dir = "/tmp";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp (argv [i], "--count")) count = (size_t) atol (argv [i + 1]);
        else if (!strcmp (argv [i], "--dim")) dim = (size_t) atol (argv [i + 1]);
        else if (!strcmp (argv [i], "--queries")) queries = (size_t) atol (argv [i + 1]);
        else if (!strcmp (argv [i], "--runs")) runs = (size_t) atol (argv [i + 1]);
        else if (!strcmp (argv [i], "--dir")) dir = argv [i + 1];
    }
    const size_t k = 10, extra = 1000;
    const size_t clusters = 1000;
    std::vector<float> centres (clusters * dim), data ((count + extra + queries) * dim);
    for (auto &value: centres)
        value = (float) (s_uniform () * 2 - 1);
    for (size_t row = 0; row < count + extra + queries; row++) {
        size_t centre = s_rand () % clusters;
        for (size_t col = 0; col < dim; col++)
            data [row * dim + col] = centres [centre * dim + col] + (float) (0.35 * s_gauss ());
    }
    const float *query_base = data.data () + (count + extra) * dim;
    std::vector<float> normal ((count + queries) * dim);
    for (size_t row = 0; row < count; row++)
        s_normalise (&data [row * dim], &normal [row * dim], dim);
    for (size_t q = 0; q < queries; q++)
        s_normalise (query_base + q * dim, &normal [(count + q) * dim], dim);

    //  Exact search: the ground truth, and its speed
    hnswlib::InnerProductSpace space (dim);
    auto distance = space.get_dist_func ();
    void *param = space.get_dist_func_param ();
    std::vector<std::vector<uint64_t>> truth (queries);
    double start = s_now ();
    for (size_t q = 0; q < queries; q++) {
        std::priority_queue<std::pair<float, uint64_t>> heap;
        const float *query = &normal [(count + q) * dim];
        for (size_t row = 0; row < count; row++) {
            float d = distance (query, &normal [row * dim], param);
            if (heap.size () < k || d < heap.top ().first) {
                heap.push ({ d, row + 1 });
                if (heap.size () > k)
                    heap.pop ();
            }
        }
        while (!heap.empty ()) {
            truth [q].push_back (heap.top ().second);
            heap.pop ();
        }
    }
    double exact_qps = queries / (s_now () - start);

    //  Direct hnswlib
    long rss0 = s_rss_kib ();
    start = s_now ();
    auto *direct = new hnswlib::HierarchicalNSW<float> (&space, count, 16, 200);
    for (size_t row = 0; row < count; row++)
        direct->addPoint (&normal [row * dim], row + 1);
    double direct_build = s_now () - start;
    long rss1 = s_rss_kib ();

    //  Ours: lh_vindex (LMDB + shim)
    std::string path = dir + "/lh-bench-vectors-index";
    std::string graph = dir + "/lh-bench-vectors-graph";
    lh_vparams_t params = { dim, LH_METRIC_COSINE, 16, 200, 64 };
    const char *error = NULL;
    lh_vindex_t *ours = lh_vindex_create (path.c_str (), "bench", &params, (size_t) 64 << 30, &error);
    if (!ours) {
        fprintf (stderr, "bench: %s (%s exists? remove it)\n", error, path.c_str ());
        return 1;
    }
    std::vector<std::string> ids (count + extra);
    for (size_t row = 0; row < count + extra; row++)
        ids [row] = std::to_string (row + 1);
    const unsigned char metadata [] = { 0x81, 0xa1, 'g', 0x01 };     //  {"g": 1}
    const size_t batch = 500;
    std::vector<lh_vitem_t> items (batch);
    start = s_now ();
    for (size_t row = 0; row < count; row += batch) {
        size_t n = std::min (batch, count - row);
        for (size_t i = 0; i < n; i++)
            items [i] = { ids [row + i].c_str (), ids [row + i].size (), &data [(row + i) * dim],
                          metadata, sizeof (metadata), true };
        if (lh_vindex_add (ours, items.data (), n, &error)) {
            fprintf (stderr, "bench: add failed: %s\n", error);
            return 1;
        }
    }
    double ours_build = s_now () - start;
    long rss2 = s_rss_kib ();
    size_t ours_bytes = lh_hnsw_memory (lh_vindex_graph (ours)) / count;
    //  hnswlib's own structures, estimated the same way
    size_t direct_bytes = direct->size_data_per_element_
        + sizeof (std::mutex) + sizeof (int) + sizeof (void *) + 32 + 2 * 2;

    //  Searches, interleaved A B A B, median of runs
    printf ("| figure | ours (vectord index) | hnswlib direct | exact |\n|---|---|---|---|\n");
    printf ("| build %zu x %zu, s | %.1f | %.1f | - |\n", count, dim, ours_build, direct_build);
    printf ("| adds/s | %.0f | %.0f | - |\n", count / ours_build, count / direct_build);
    size_t efs [3] = { 40, 64, 128 };
    for (size_t e = 0; e < 3; e++) {
        std::vector<double> ours_qps, direct_qps;
        double ours_recall = 0, direct_recall = 0;
        for (size_t run = 0; run < runs; run++) {
            std::vector<std::vector<uint64_t>> found (queries);
            direct->setEf (efs [e]);
            start = s_now ();
            for (size_t q = 0; q < queries; q++) {
                auto result = direct->searchKnn (&normal [(count + q) * dim], k);
                while (!result.empty ()) {
                    found [q].push_back (result.top ().second);
                    result.pop ();
                }
            }
            direct_qps.push_back (queries / (s_now () - start));
            direct_recall = s_recall (found, truth);
            start = s_now ();
            for (size_t q = 0; q < queries; q++) {
                lh_pack_t *pack = lh_pack_new ();
                lh_vindex_search (ours, query_base + q * dim, k, efs [e], NULL, NULL, pack);
                found [q] = s_ids (pack);
                lh_pack_destroy (&pack);
            }
            ours_qps.push_back (queries / (s_now () - start));
            ours_recall = s_recall (found, truth);
        }
        printf ("| search ef %zu: QPS (recall@10) | %.0f (%.3f) | %.0f (%.3f) | %s |\n",
                efs [e], s_median (ours_qps), ours_recall, s_median (direct_qps), direct_recall,
                e == 0? std::to_string ((long) exact_qps).append (" (1.000)").c_str (): "");
    }
    printf ("| bytes per vector (structures) | %zu | %zu | %zu (float32 only) |\n",
            ours_bytes, direct_bytes, dim * sizeof (float));
    printf ("| RSS growth per vector, bytes | %ld | %ld | - |\n",
            (rss2 - rss1) * 1024 / (long) count, (rss1 - rss0) * 1024 / (long) count);

    //  Restart: snapshot, 1000 logged adds, close, reopen + restore
    uint64_t seq = 0;
    start = s_now ();
    lh_vindex_snapshot (ours, graph.c_str (), &seq);
    double save = s_now () - start;
    for (size_t row = count; row < count + extra; row += batch) {
        for (size_t i = 0; i < batch; i++)
            items [i] = { ids [row + i].c_str (), ids [row + i].size (), &data [(row + i) * dim],
                          NULL, 0, false };
        lh_vindex_add (ours, items.data (), batch, &error);
    }
    lh_vindex_destroy (&ours);
    start = s_now ();
    ours = lh_vindex_open (path.c_str (), (size_t) 64 << 30, &error);
    bool rebuilt = true;
    int rc = ours? lh_vindex_restore (ours, graph.c_str (), seq, &rebuilt): -1;
    double restart = s_now () - start;
    struct stat info;
    stat (graph.c_str (), &info);
    printf ("| restart: open + load snapshot + replay %zu logged adds, s | %.2f%s | - | - |\n",
            extra, restart, rc || rebuilt? " (FAILED: rebuilt)": "");
    printf ("| snapshot save, s (file %.0f MB) | %.2f | - | - |\n", info.st_size / 1e6, save);
    printf ("\nexact search: %.1f QPS single-threaded (the ground truth of recall).\n", exact_qps);
    printf ("ours after restart: %zu vectors\n", ours? lh_vindex_size (ours): 0);
    lh_vindex_drop (&ours);
    unlink (graph.c_str ());
    delete direct;
    return 0;
}
