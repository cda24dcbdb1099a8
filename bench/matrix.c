/*  =========================================================================
    bench_matrix - matrixd.search over three corpora beside a client that
    makes the same three vectord searches itself, in the same run

    bench_matrix [--count N] [--dim D] [--clients C] [--seconds S] [--runs R]
                 [--vectord W] [--matrixd W] [--dir DIR]

    One process: our broker (clients on tcp loopback, the services on
    inproc, as `lakehouse up` runs them), vectord (W workers, default 2)
    holding three corpora of N (100,000) clustered, seeded vectors of D
    (384) dimensions, matrixd (W workers, default 8). C (16) client
    threads, each its own bus client, search with a given vector, k 10:

      direct   three vectord.search calls in flight together
               (lh_client_call_all), the replies merged by distance and cut
               to 10 in the client: what a caller without matrixd does;
      matrix   one matrixd.search {vector, corpora: [3], k: 10}.

    Runs of S seconds, direct and matrix interleaved (A B A B), R runs of
    each; the table gives the median q/s and the median p50 / p99 latency.
    Every answer is checked (status 200 and 10 hits).
    =========================================================================
*/

#include "lh_proto.h"
#include "lh_client.h"
#include "lh_actor.h"
#include "lh_broker.h"
#include "lh_body.h"
#include "vectord.h"
#include "matrixd.h"

#define S_K             10              //  hits per search
#define S_CLUSTERS      200             //  clusters of the corpora
#define S_QUERIES       4096            //  distinct query vectors
#define S_BATCH         2000            //  vectors per add

static size_t s_count = 100000;
static size_t s_dim = 384;
static int s_clients = 16;
static int s_seconds = 10;
static int s_runs = 3;
static const char *s_corpora [3] = { "corpus_a", "corpus_b", "corpus_c" };
static float *s_queries;                //  S_QUERIES x dim

//  splitmix64
static uint64_t
s_next (uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

//  A uniform value in [-1, 1)
static float
s_uniform (uint64_t *state)
{
    return (float) ((s_next (state) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

//  A vector near one of the clusters (centres drawn from the seed)
static void
s_vector (uint64_t *state, const float *centres, float *out)
{
    const float *centre = centres + (s_next (state) % S_CLUSTERS) * s_dim;
    for (size_t index = 0; index < s_dim; index++)
        out [index] = centre [index] + 0.35f * s_uniform (state);
}


//  --------------------------------------------------------------------------
//  Fill a corpus: create it, add count vectors in batches. Runs in its
//  own thread (one per corpus), with its own client.

typedef struct {
    const lh_link_t *link;              //  how to reach the broker
    const char *name;                   //  the corpus
    uint64_t seed;                      //  its vectors' seed
    const float *centres;               //  shared cluster centres
    int rc;                             //  0 or -1
} s_fill_t;

static void *
s_fill (void *arg)
{
    s_fill_t *fill = (s_fill_t *) arg;
    lh_client_t *client = lh_client_new (fill->link, fill->name);
    lh_call_opts_t opts = { .timeout_ms = 600000, .queue = true };
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_kv_str (pack, "name", fill->name);
    lh_pack_kv_uint (pack, "dim", s_dim);
    lh_pack_kv_str (pack, "metric", "cosine");
    lh_pack_close (pack);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    lh_reply_t *reply = NULL;
    lh_client_call (client, "vectord", "create", data, size, &opts, &reply);
    fill->rc = lh_reply_status (reply) == 201? 0: -1;
    lh_reply_destroy (&reply);
    lh_pack_destroy (&pack);
    float *vector = (float *) malloc (s_dim * sizeof (float));
    uint64_t state = fill->seed;
    for (size_t first = 0; fill->rc == 0 && first < s_count; first += S_BATCH) {
        pack = lh_pack_new ();
        lh_pack_open_map (pack);
        lh_pack_kv_str (pack, "name", fill->name);
        lh_pack_str (pack, "items");
        lh_pack_open_array (pack);
        for (size_t index = first; index < first + S_BATCH && index < s_count; index++) {
            char id [32];
            snprintf (id, sizeof (id), "%s-%zu", fill->name, index);
            s_vector (&state, fill->centres, vector);
            lh_pack_open_map (pack);
            lh_pack_kv_str (pack, "id", id);
            lh_pack_str (pack, "vector");
            lh_pack_bin (pack, vector, s_dim * sizeof (float));
            lh_pack_str (pack, "metadata");
            lh_pack_open_map (pack);
            lh_pack_kv_uint (pack, "n", index);
            lh_pack_close (pack);
            lh_pack_close (pack);
        }
        lh_pack_close (pack);
        lh_pack_close (pack);
        data = lh_pack_data (pack, &size);
        lh_client_call (client, "vectord", "add", data, size, &opts, &reply);
        if (lh_reply_status (reply) != 200)
            fill->rc = -1;
        lh_reply_destroy (&reply);
        lh_pack_destroy (&pack);
    }
    free (vector);
    lh_client_destroy (&client);
    return NULL;
}


//  --------------------------------------------------------------------------
//  One client thread of a measured run

typedef struct {
    const lh_link_t *link;              //  how to reach the broker
    bool matrix;                        //  matrixd, else direct
    int64_t until;                      //  zclock_mono deadline
    int index;                          //  thread number
    size_t done;                        //  searches answered
    size_t errors;                      //  answers not 200 or not k hits
    double *latencies;                  //  µs per search
    size_t capacity;                    //  room in latencies
} s_client_t;

//  A hit of a direct search, for the merge
typedef struct {
    double distance;
    const msgpack_object *item;
} s_merged_t;

static int
s_merged_compare (const void *a, const void *b)
{
    double left = ((const s_merged_t *) a)->distance, right = ((const s_merged_t *) b)->distance;
    return left < right? -1: left > right;
}

//  The three searches in flight together, merged: the hits kept
static size_t
s_direct (lh_client_t *client, const float *vector)
{
    lh_pack_t *packs [3];
    lh_call_t calls [3];
    for (int corpus = 0; corpus < 3; corpus++) {
        packs [corpus] = lh_pack_new ();
        lh_pack_open_map (packs [corpus]);
        lh_pack_kv_str (packs [corpus], "name", s_corpora [corpus]);
        lh_pack_str (packs [corpus], "vector");
        lh_pack_bin (packs [corpus], vector, s_dim * sizeof (float));
        lh_pack_kv_int (packs [corpus], "k", S_K);
        lh_pack_close (packs [corpus]);
        calls [corpus] = (lh_call_t) { .svc = "vectord", .op = "search" };
        calls [corpus].body = lh_pack_data (packs [corpus], &calls [corpus].size);
    }
    lh_call_opts_t opts = { .timeout_ms = 10000, .queue = true };
    lh_client_call_all (client, calls, 3, &opts);
    s_merged_t merged [3 * S_K];
    size_t count = 0;
    for (int corpus = 0; corpus < 3; corpus++) {
        const msgpack_object *hits = lh_reply_status (calls [corpus].reply) == 200?
                                     lh_reply_object (calls [corpus].reply): NULL;
        for (uint32_t rank = 0; hits && hits->type == MSGPACK_OBJECT_ARRAY
                                && rank < hits->via.array.size && count < 3 * S_K; rank++) {
            merged [count].item = &hits->via.array.ptr [rank];
            if (lh_obj_double (merged [count].item, "distance", &merged [count].distance))
                count++;
        }
    }
    qsort (merged, count, sizeof (s_merged_t), s_merged_compare);
    size_t kept = count < S_K? count: S_K;
    for (int corpus = 0; corpus < 3; corpus++) {
        lh_reply_destroy (&calls [corpus].reply);
        lh_pack_destroy (&packs [corpus]);
    }
    return kept;
}

//  One matrixd.search: the hits returned
static size_t
s_matrix (lh_client_t *client, const float *vector)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_open_map (pack);
    lh_pack_str (pack, "vector");
    lh_pack_bin (pack, vector, s_dim * sizeof (float));
    lh_pack_str (pack, "corpora");
    lh_pack_open_array (pack);
    for (int corpus = 0; corpus < 3; corpus++)
        lh_pack_str (pack, s_corpora [corpus]);
    lh_pack_close (pack);
    lh_pack_kv_int (pack, "k", S_K);
    lh_pack_close (pack);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    lh_call_opts_t opts = { .timeout_ms = 10000, .queue = true };
    lh_reply_t *reply = NULL;
    lh_client_call (client, "matrixd", "search", data, size, &opts, &reply);
    const msgpack_object *hits = lh_reply_status (reply) == 200?
                                 lh_obj_get (lh_reply_object (reply), "hits"): NULL;
    size_t kept = hits && hits->type == MSGPACK_OBJECT_ARRAY? hits->via.array.size: 0;
    lh_reply_destroy (&reply);
    lh_pack_destroy (&pack);
    return kept;
}

static void *
s_client (void *arg)
{
    s_client_t *self = (s_client_t *) arg;
    char name [32];
    snprintf (name, sizeof (name), "bench-%d", self->index);
    lh_client_t *client = lh_client_new (self->link, name);
    size_t query = (size_t) self->index * 257;
    while (client && zclock_mono () < self->until) {
        const float *vector = s_queries + (query++ % S_QUERIES) * s_dim;
        int64_t started = zclock_usecs ();
        size_t kept = self->matrix? s_matrix (client, vector): s_direct (client, vector);
        if (self->done < self->capacity)
            self->latencies [self->done] = (double) (zclock_usecs () - started);
        self->done++;
        self->errors += kept != S_K;
    }
    lh_client_destroy (&client);
    return NULL;
}

static int
s_double_compare (const void *a, const void *b)
{
    double left = *(const double *) a, right = *(const double *) b;
    return left < right? -1: left > right;
}

//  One run: q/s, p50 and p99 (µs); errors added up
static void
s_run (const lh_link_t *link, bool matrix, double *qps, double *p50, double *p99, size_t *errors)
{
    s_client_t *clients = (s_client_t *) calloc ((size_t) s_clients, sizeof (s_client_t));
    pthread_t *threads = (pthread_t *) calloc ((size_t) s_clients, sizeof (pthread_t));
    int64_t started = zclock_mono ();
    for (int index = 0; index < s_clients; index++) {
        clients [index] = (s_client_t) { .link = link, .matrix = matrix, .index = index,
                                         .until = started + s_seconds * 1000,
                                         .capacity = 1 << 20 };
        clients [index].latencies = (double *) malloc (clients [index].capacity * sizeof (double));
        pthread_create (&threads [index], NULL, s_client, &clients [index]);
    }
    size_t done = 0;
    for (int index = 0; index < s_clients; index++) {
        pthread_join (threads [index], NULL);
        done += clients [index].done < clients [index].capacity? clients [index].done:
                clients [index].capacity;
    }
    double elapsed = (zclock_mono () - started) / 1000.0;
    double *all = (double *) malloc ((done + 1) * sizeof (double));
    size_t at = 0, answered = 0;
    for (int index = 0; index < s_clients; index++) {
        size_t kept = clients [index].done < clients [index].capacity? clients [index].done:
                      clients [index].capacity;
        memcpy (all + at, clients [index].latencies, kept * sizeof (double));
        at += kept;
        answered += clients [index].done;
        *errors += clients [index].errors;
        free (clients [index].latencies);
    }
    qsort (all, at, sizeof (double), s_double_compare);
    *qps = answered / elapsed;
    *p50 = at? all [at / 2]: 0;
    *p99 = at? all [(size_t) (at * 0.99)]: 0;
    free (all);
    free (clients);
    free (threads);
}

static double
s_median (double *values, int count)
{
    qsort (values, (size_t) count, sizeof (double), s_double_compare);
    return values [count / 2];
}

int
main (int argc, char *argv [])
{
    int vectord_workers = 2, matrixd_workers = 8;
    const char *dir = NULL;
    for (int index = 1; index < argc; index++) {
        const char *arg = argv [index];
        const char *value = index + 1 < argc? argv [index + 1]: NULL;
        if (value && streq (arg, "--count"))
            s_count = strtoul (value, NULL, 10);
        else
        if (value && streq (arg, "--dim"))
            s_dim = strtoul (value, NULL, 10);
        else
        if (value && streq (arg, "--clients"))
            s_clients = atoi (value);
        else
        if (value && streq (arg, "--seconds"))
            s_seconds = atoi (value);
        else
        if (value && streq (arg, "--runs"))
            s_runs = atoi (value);
        else
        if (value && streq (arg, "--vectord"))
            vectord_workers = atoi (value);
        else
        if (value && streq (arg, "--matrixd"))
            matrixd_workers = atoi (value);
        else
        if (value && streq (arg, "--dir"))
            dir = value;
        else {
            fprintf (stderr, "usage: bench_matrix [--count N] [--dim D] [--clients C] [--seconds S] "
                     "[--runs R] [--vectord W] [--matrixd W] [--dir DIR]\n");
            return 2;
        }
        index++;
    }
    if (s_count == 0 || s_dim == 0 || s_clients < 1 || s_seconds < 1 || s_runs < 1) {
        fprintf (stderr, "bench_matrix: counts must be positive\n");
        return 2;
    }
    char tmp [] = "/tmp/bench-matrix-XXXXXX";
    if (!dir && !(dir = mkdtemp (tmp))) {
        fprintf (stderr, "bench_matrix: cannot make a temporary directory\n");
        return 1;
    }
    zsys_set_logstream (NULL);
    zactor_t *broker = zactor_new (lh_broker_actor, (void *) "bench");
    char *status = NULL, *tcp = NULL, *inproc = NULL;
    zsock_send (broker, "ss", "BIND", "tcp://127.0.0.1:*");
    zsock_recv (broker, "ss", &status, &tcp);
    zstr_free (&status);
    zsock_send (broker, "ss", "BIND", "inproc://bench-matrix");
    zsock_recv (broker, "ss", &status, &inproc);
    if (!status || !streq (status, "0") || !tcp || !inproc) {
        fprintf (stderr, "bench_matrix: the broker did not bind\n");
        return 1;
    }
    zstr_free (&status);
    lh_link_t services = { .endpoint = inproc };
    lh_link_t clients = { .endpoint = tcp };
    lh_config_t *config = lh_config_load (NULL, NULL);
    char *vectord_dir = zsys_sprintf ("%s/vectord", dir);
    lh_config_set (config, "data/dir", dir);
    lh_config_set (config, "vectord/dir", vectord_dir);
    lh_config_set (config, "vectord/snapshot_ms", "0");
    lh_service_runner_t *vectord = lh_service_start (&lh_vectord_service, &services, config,
                                                     vectord_workers);
    lh_service_runner_t *matrixd = lh_service_start (&lh_matrixd_service, &services, config,
                                                     matrixd_workers);
    if (!vectord || !matrixd) {
        fprintf (stderr, "bench_matrix: the services did not start\n");
        return 1;
    }

    //  The corpora, filled in parallel (one thread each)
    uint64_t state = 42;
    float *centres = (float *) malloc (S_CLUSTERS * s_dim * sizeof (float));
    for (size_t index = 0; index < S_CLUSTERS * s_dim; index++)
        centres [index] = s_uniform (&state);
    s_queries = (float *) malloc (S_QUERIES * s_dim * sizeof (float));
    for (size_t index = 0; index < S_QUERIES; index++)
        s_vector (&state, centres, s_queries + index * s_dim);
    int64_t started = zclock_mono ();
    s_fill_t fills [3];
    pthread_t threads [3];
    for (int corpus = 0; corpus < 3; corpus++) {
        fills [corpus] = (s_fill_t) { .link = &services, .name = s_corpora [corpus],
                                      .seed = 1000 + (uint64_t) corpus, .centres = centres };
        pthread_create (&threads [corpus], NULL, s_fill, &fills [corpus]);
    }
    for (int corpus = 0; corpus < 3; corpus++) {
        pthread_join (threads [corpus], NULL);
        if (fills [corpus].rc) {
            fprintf (stderr, "bench_matrix: filling %s failed\n", s_corpora [corpus]);
            return 1;
        }
    }
    fprintf (stderr, "bench_matrix: 3 corpora of %zu x %zu filled in %.1f s\n", s_count, s_dim,
             (zclock_mono () - started) / 1000.0);

    //  Warm-up, then A B A B
    double qps [2][16], p50 [2][16], p99 [2][16];
    size_t errors [2] = { 0, 0 };
    double ignore;
    size_t ignored = 0;
    int seconds = s_seconds;
    s_seconds = 2;
    s_run (&clients, false, &ignore, &ignore, &ignore, &ignored);
    s_run (&clients, true, &ignore, &ignore, &ignore, &ignored);
    s_seconds = seconds;
    if (s_runs > 16)
        s_runs = 16;
    for (int run = 0; run < s_runs; run++)
        for (int matrix = 0; matrix < 2; matrix++) {
            s_run (&clients, matrix, &qps [matrix][run], &p50 [matrix][run], &p99 [matrix][run],
                   &errors [matrix]);
            fprintf (stderr, "bench_matrix: run %d %s: %.0f q/s, p50 %.0f us, p99 %.0f us\n", run + 1,
                     matrix? "matrix": "direct", qps [matrix][run], p50 [matrix][run],
                     p99 [matrix][run]);
        }
    double direct = s_median (qps [0], s_runs), ours = s_median (qps [1], s_runs);
    printf ("| client | q/s (median of %d) | p50 ms | p99 ms | runs (q/s) | bad answers |\n"
            "|---|---|---|---|---|---|\n", s_runs);
    for (int matrix = 0; matrix < 2; matrix++) {
        char list [256] = "";
        for (int run = 0; run < s_runs; run++)
            snprintf (list + strlen (list), sizeof (list) - strlen (list), "%s%.0f",
                      run? ", ": "", qps [matrix][run]);
        double median = s_median (qps [matrix], s_runs);
        printf ("| %s | %.0f | %.2f | %.2f | %s | %zu |\n",
                matrix? "matrixd.search (one call, 3 corpora)":
                        "direct: 3 x vectord.search in flight + merge",
                median, s_median (p50 [matrix], s_runs) / 1000.0,
                s_median (p99 [matrix], s_runs) / 1000.0, list, errors [matrix]);
    }
    printf ("\nmatrixd / direct: **%.2fx** q/s (target >= 0.80x)\n", direct > 0? ours / direct: 0);

    lh_service_stop (&matrixd);
    lh_service_stop (&vectord);
    zactor_destroy (&broker);
    lh_config_destroy (&config);
    free (vectord_dir);
    free (centres);
    free (s_queries);
    free (tcp);
    free (inproc);
    if (dir == tmp) {
        char *command = zsys_sprintf ("rm -rf '%s'", tmp);
        if (system (command) != 0)
            fprintf (stderr, "bench_matrix: could not remove %s\n", tmp);
        free (command);
    }
    return errors [0] || errors [1]? 1: 0;
}
