/*  =========================================================================
    lh_vector_harness - vectord / embedd test helper (issue 8)

    lh_vector_harness [--broker ENDPOINT] [--services LIST] [--workers N]
                      [--set key=value ...]
        broker (unless --broker) + the services of LIST (comma-separated
        from storaged, vectord, embedd; default "storaged,vectord,embedd"),
        then "harness ready on tcp://127.0.0.1:PORT pid PID" on stdout;
        runs until SIGTERM / SIGINT; log/level "debug" turns on debug
        logging. See lh_harness.h.

    lh_vector_harness --recall [COUNT [DIM]]
        COUNT clustered vectors (default 20000 x 128, seeded), cosine,
        default parameters: prints recall@10 of HNSW search against exact
        search over 200 queries; exits 0 if it is >= 0.95.

    lh_vector_harness --concurrency [SECONDS]
        one durable index (lh_vindex, LMDB in a temp dir); 4 threads search
        (some with exclude_ids and filters) while 2 threads add, re-add and
        delete, for SECONDS (default 5): every search must answer at most k
        results, known ids only, nearest first. Exits 0 if all did.
    =========================================================================
*/

#include "lh_harness.h"
#include "lh_vindex.h"
#include <math.h>
#include <pthread.h>

static const lh_harness_t s_harness = {
    .program = "lh_vector_harness", .services = "storaged,vectord,embedd",
    .defaults_only = true, .max_services = 4, .debug_log = true
};


//  --------------------------------------------------------------------------
//  Seeded clustered vectors: centres uniform in [-1, 1], points Gaussian
//  around them (sigma 0.35 per component)

static uint64_t
s_rand (uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

static double
s_uniform (uint64_t *state)
{
    return (double) (s_rand (state) >> 11) / (double) (1ULL << 53);
}

static double
s_gauss (uint64_t *state)
{
    double u = s_uniform (state) + 1e-12, v = s_uniform (state);
    return sqrt (-2 * log (u)) * cos (2 * M_PI * v);
}

static float *
s_clustered (size_t count, size_t dim, size_t clusters, uint64_t seed)
{
    uint64_t state = seed * 2654435761ULL + 1;
    float *centres = (float *) malloc (clusters * dim * sizeof (float));
    float *data = (float *) malloc (count * dim * sizeof (float));
    assert (centres && data);
    for (size_t index = 0; index < clusters * dim; index++)
        centres [index] = (float) (s_uniform (&state) * 2 - 1);
    for (size_t row = 0; row < count; row++) {
        size_t centre = s_rand (&state) % clusters;
        for (size_t col = 0; col < dim; col++)
            data [row * dim + col] = centres [centre * dim + col] + (float) (0.35 * s_gauss (&state));
    }
    free (centres);
    return data;
}


//  --------------------------------------------------------------------------
//  --recall

static int
s_recall (size_t count, size_t dim)
{
    const size_t queries = 200, k = 10;
    if (count < 1 || count > 10000000 || dim < 1 || dim > 4096)
        return 2;
    float *data = s_clustered (count + queries, dim, 100, 42);
    lh_hnsw_t *index = lh_hnsw_new (dim, LH_METRIC_COSINE, 16, 200, 64);
    assert (index);
    uint64_t *labels = (uint64_t *) malloc (count * sizeof (uint64_t));
    for (size_t row = 0; row < count; row++)
        labels [row] = row + 1;
    int64_t start = zclock_mono ();
    for (size_t row = 0; row < count; row += 1000) {
        size_t batch = count - row < 1000? count - row: 1000;
        assert (lh_hnsw_add (index, labels + row, data + row * dim, batch) == 0);
    }
    int64_t built = zclock_mono () - start;
    size_t hits_total = 0;
    lh_hit_t approx [10], exact [10];
    start = zclock_mono ();
    for (size_t query = 0; query < queries; query++) {
        const float *vector = data + (count + query) * dim;
        size_t found = lh_hnsw_search (index, vector, k, 0, NULL, NULL, 0, approx);
        size_t truth = lh_hnsw_search_exact (index, vector, k, NULL, NULL, exact);
        for (size_t a = 0; a < found; a++)
            for (size_t b = 0; b < truth; b++)
                if (approx [a].label == exact [b].label) {
                    hits_total++;
                    break;
                }
    }
    double recall = (double) hits_total / (double) (queries * k);
    printf ("recall@10 %.4f over %zu queries; %zu x %zu built in %" PRId64 " ms "
            "(ef %zu, M 16, ef_construction 200); queries+exact %" PRId64 " ms\n",
            recall, queries, count, dim, built, lh_hnsw_ef (index), zclock_mono () - start);
    lh_hnsw_destroy (&index);
    free (labels);
    free (data);
    return recall >= 0.95? 0: 1;
}


//  --------------------------------------------------------------------------
//  --concurrency

#define S_DIM 16
#define S_IDS 400                       //  ids the writers cycle through

typedef struct {
    lh_vindex_t *index;                 //  shared index
    int64_t until;                      //  monotonic deadline
    int thread;                         //  thread number
    uint64_t operations;                //  done
    uint64_t errors;                    //  bad answers
    char first_error [200];             //  the first bad answer
} s_worker_t;

static void
s_fail (s_worker_t *self, const char *what)
{
    if (self->errors++ == 0)
        snprintf (self->first_error, sizeof (self->first_error), "thread %d: %s",
                  self->thread, what);
}

static void
s_vector (uint64_t *state, float *vector)
{
    for (size_t index = 0; index < S_DIM; index++)
        vector [index] = (float) (s_uniform (state) * 2 - 1);
    vector [0] += 0.01f;                //  never all zero
}

static void *
s_writer (void *arg)
{
    s_worker_t *self = (s_worker_t *) arg;
    uint64_t state = 1000 + (uint64_t) self->thread;
    float vectors [20 * S_DIM];
    char ids [20][32];
    lh_vitem_t items [20];
    const char *error;
    //  metadata {"t": thread}
    unsigned char metadata [4] = { 0x81, 0xa1, 't', (unsigned char) self->thread };
    while (zclock_mono () < self->until) {
        size_t count = 1 + s_rand (&state) % 20;
        if (self->thread == 0 || s_rand (&state) % 3) {
            for (size_t index = 0; index < count; index++) {
                s_vector (&state, vectors + index * S_DIM);
                snprintf (ids [index], sizeof (ids [index]), "id-%u",
                          (unsigned) (s_rand (&state) % S_IDS));
                items [index] = (lh_vitem_t) { ids [index], strlen (ids [index]),
                                               vectors + index * S_DIM, metadata, 4,
                                               s_rand (&state) % 2 == 0 };
            }
            if (lh_vindex_add (self->index, items, count, &error))
                s_fail (self, error);
        }
        else {
            const char *names [20];
            size_t sizes [20];
            for (size_t index = 0; index < count; index++) {
                snprintf (ids [index], sizeof (ids [index]), "id-%u",
                          (unsigned) (s_rand (&state) % S_IDS));
                names [index] = ids [index];
                sizes [index] = strlen (ids [index]);
            }
            if (lh_vindex_delete (self->index, names, sizes, count, &error) < 0)
                s_fail (self, error);
        }
        if (s_rand (&state) % 50 == 0)
            lh_vindex_maybe_compact (self->index, 20);
        self->operations++;
    }
    return NULL;
}

static void *
s_searcher (void *arg)
{
    s_worker_t *self = (s_worker_t *) arg;
    uint64_t state = 2000 + (uint64_t) self->thread;
    float query [S_DIM];
    //  exclude ["id-1", "id-2"], filter {"t": 1}
    const unsigned char exclude_bytes [] = { 0x92, 0xa4, 'i', 'd', '-', '1', 0xa4, 'i', 'd', '-', '2' };
    const unsigned char filter_bytes [] = { 0x81, 0xa1, 't', 0x01 };
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_object exclude, filter;
    assert (msgpack_unpack ((const char *) exclude_bytes, sizeof (exclude_bytes), NULL, &zone, &exclude) == MSGPACK_UNPACK_SUCCESS);
    assert (msgpack_unpack ((const char *) filter_bytes, sizeof (filter_bytes), NULL, &zone, &filter) == MSGPACK_UNPACK_SUCCESS);
    while (zclock_mono () < self->until) {
        s_vector (&state, query);
        size_t k = 1 + s_rand (&state) % 20;
        int mode = (int) (s_rand (&state) % 4);
        lh_pack_t *pack = lh_pack_new ();
        size_t found = lh_vindex_search (self->index, query, k, 0,
                                         mode & 1? &exclude: NULL, mode & 2? &filter: NULL, pack);
        size_t size;
        const char *data = (const char *) lh_pack_data (pack, &size);
        msgpack_zone results_zone;
        msgpack_zone_init (&results_zone, 4096);
        msgpack_object results;
        if (msgpack_unpack (data, size, NULL, &results_zone, &results) != MSGPACK_UNPACK_SUCCESS
        ||  results.type != MSGPACK_OBJECT_ARRAY || results.via.array.size != found || found > k)
            s_fail (self, "malformed result or more than k");
        else {
            double last = -1e30;
            for (uint32_t index = 0; index < found; index++) {
                const msgpack_object *result = &results.via.array.ptr [index];
                const char *id;
                size_t id_size;
                double distance;
                if (!lh_obj_str (result, "id", &id, &id_size) || id_size < 4
                ||  memcmp (id, "id-", 3) != 0 || atoi (id + 3) >= S_IDS
                ||  !lh_obj_double (result, "distance", &distance))
                    s_fail (self, "unknown id in a result");
                else
                if (distance < last - 1e-5)
                    s_fail (self, "results not nearest first");
                else
                if ((mode & 1) && ((id_size == 4 && (id [3] == '1' || id [3] == '2'))))
                    s_fail (self, "an excluded id came back");
                last = distance;
            }
        }
        msgpack_zone_destroy (&results_zone);
        lh_pack_destroy (&pack);
        self->operations++;
    }
    msgpack_zone_destroy (&zone);
    return NULL;
}

static int
s_concurrency (int seconds)
{
    char dir [] = "/tmp/lh_vector_concurrency.XXXXXX";
    assert (mkdtemp (dir));
    char *path = zsys_sprintf ("%s/idx", dir);
    lh_vparams_t params = { .dim = S_DIM, .metric = LH_METRIC_COSINE, .m = 8,
                            .ef_construction = 64, .ef = 32 };
    const char *error = NULL;
    lh_vindex_t *index = lh_vindex_create (path, "concurrency", &params, 1 << 28, &error);
    if (!index) {
        fprintf (stderr, "lh_vector_harness: %s\n", error);
        return 1;
    }
    s_worker_t workers [6];
    pthread_t threads [6];
    int64_t until = zclock_mono () + seconds * 1000;
    for (int thread = 0; thread < 6; thread++) {
        workers [thread] = (s_worker_t) { .index = index, .until = until, .thread = thread };
        pthread_create (&threads [thread], NULL, thread < 2? s_writer: s_searcher,
                        &workers [thread]);
    }
    uint64_t writes = 0, searches = 0, errors = 0;
    for (int thread = 0; thread < 6; thread++) {
        pthread_join (threads [thread], NULL);
        if (thread < 2)
            writes += workers [thread].operations;
        else
            searches += workers [thread].operations;
        errors += workers [thread].errors;
        if (workers [thread].errors)
            fprintf (stderr, "%s\n", workers [thread].first_error);
    }
    printf ("%d s: %" PRIu64 " write batches, %" PRIu64 " searches, %" PRIu64 " errors, "
            "%zu live at the end\n", seconds, writes, searches, errors, lh_vindex_size (index));
    lh_vindex_drop (&index);
    zstr_free (&path);
    rmdir (dir);
    return errors == 0 && searches > 0 && writes > 0? 0: 1;
}


//  --------------------------------------------------------------------------
//  --recall, --concurrency, or the service harness

int
main (int argc, char *argv [])
{
    if (argc > 1 && streq (argv [1], "--recall"))
        return s_recall (argc > 2? (size_t) atol (argv [2]): 20000,
                         argc > 3? (size_t) atol (argv [3]): 128);
    if (argc > 1 && streq (argv [1], "--concurrency"))
        return s_concurrency (argc > 2? atoi (argv [2]): 5);
    return lh_harness_main (&s_harness, argc, argv);
}
