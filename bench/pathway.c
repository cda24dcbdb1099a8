/*  =========================================================================
    bench_pathway - pathwayd's durable add at C concurrent clients, beside
    raw LMDB put + commit of the same bytes, measured in the same run

    bench_pathway [--seconds S] [--runs N] [--clients C] [--workers W,W..]
                  [--dir DIR] [--spin]

    Rows, interleaved A B C A B C ... (each run on a fresh directory under
    DIR, default $TMPDIR or /tmp, so on the same filesystem):
      raw LMDB      C threads, each: begin, put (8-byte key, the content's
                    msgpack bytes), commit (fsync) - LMDB's default,
                    durable mode; its writer lock serialises them
      raw batched   one thread: begin, C puts, commit - what batching by
                    hand gives on this machine
      lh_pathstore  C threads calling lh_pathstore_write (add) on the
                    store directly: pathwayd's records and group commit,
                    no bus
      pathwayd xW   C client threads over tcp loopback, one add in flight
                    each, to a broker and W pathwayd workers in this
                    process; each reply comes after its commit
    Reports adds/s and p50/p99 latency (µs), the median run by rate, and
    the writes each commit carried.

    --spin: a busy thread at the lowest priority (nice 19) runs through
    every row. On a virtual machine an fsync that finds every vCPU idle
    waits for one to wake up, which can cost ten times the fsync itself;
    the spinner keeps one awake, so the rows compare the work done rather
    than the wake-ups.
    =========================================================================
*/

#include "lh_proto.h"
#include "lh_client.h"
#include "lh_actor.h"
#include "lh_broker.h"
#include "lh_pathstore.h"
#include "pathwayd.h"
#include <lmdb.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#define S_RUNS_MAX  15

static int s_seconds = 3;
static int s_runs = 3;
static int s_clients = 16;
static const char *s_base = NULL;
static atomic_bool s_spinning;                   //  the spinner runs while set

//  The content every row writes, as msgpack, and pathwayd's add body
static lh_pack_t *s_content;
static lh_pack_t *s_body;

typedef enum { S_RAW, S_RAW_BATCH, S_STORE, S_BUS } s_kind_t;

typedef struct {
    s_kind_t kind;                      //  which row
    int index;                          //  client number
    MDB_env *env;                       //  raw: the environment
    MDB_dbi dbi;                        //  raw: the database
    lh_pathstore_t *store;              //  store: the store
    const char *endpoint;               //  bus: the broker
    int64_t until;                      //  stop time (zclock_mono)
    int64_t *latencies;                 //  µs per add
    size_t capacity;                    //  of latencies
    size_t count;                       //  filled
    size_t errors;                      //  failed adds
} s_client_t;


//  --------------------------------------------------------------------------
//  One client thread: adds one at a time until `until`

static void *
s_client_thread (void *args)
{
    s_client_t *self = (s_client_t *) args;
    size_t content_size, body_size;
    const void *content = lh_pack_data (s_content, &content_size);
    const void *body = lh_pack_data (s_body, &body_size);
    lh_client_t *client = NULL;
    zchunk_t *folded = zchunk_new (NULL, 256);
    if (self->kind == S_BUS) {
        lh_link_t link = { .endpoint = self->endpoint };
        client = lh_client_new (&link, "bench");
        if (!client) {
            self->errors++;
            return NULL;
        }
    }
    if (self->kind == S_STORE) {
        msgpack_zone zone;
        msgpack_zone_init (&zone, 1024);
        msgpack_object object;
        char reason [300];
        msgpack_unpack (content, content_size, NULL, &zone, &object);
        lh_pathstore_content (&object, folded, reason, sizeof (reason));
        msgpack_zone_destroy (&zone);
    }
    uint64_t serial = 0;
    while (zclock_mono () < self->until) {
        int64_t started = zclock_usecs ();
        bool ok = false;
        size_t adds = 1;
        if (self->kind == S_RAW || self->kind == S_RAW_BATCH) {
            //  One put per commit, or s_clients puts per commit
            adds = self->kind == S_RAW_BATCH? (size_t) s_clients: 1;
            MDB_txn *txn;
            if (mdb_txn_begin (self->env, NULL, 0, &txn) == 0) {
                ok = true;
                for (size_t put = 0; ok && put < adds; put++) {
                    uint8_t key [8];
                    uint64_t id = ((uint64_t) (self->index + put) << 40) | serial++;
                    for (int index = 7; index >= 0; index--, id >>= 8)
                        key [index] = (uint8_t) id;
                    MDB_val k = { 8, key }, v = { content_size, (void *) content };
                    ok = mdb_put (txn, self->dbi, &k, &v, 0) == 0;
                }
                if (ok)
                    ok = mdb_txn_commit (txn) == 0;
                else
                    mdb_txn_abort (txn);
            }
        }
        else
        if (self->kind == S_STORE) {
            lh_pathwrite_t write = {
                .op = LH_PATH_ADD, .content = content, .content_size = content_size,
                .folded = zchunk_data (folded), .folded_size = zchunk_size (folded),
                .tags = "\x90", .tags_size = 1
            };
            lh_pathstore_write (self->store, &write);
            ok = write.status == 201;
            lh_pack_destroy (&write.trace);
        }
        else {
            lh_call_opts_t opts = { .timeout_ms = 10000 };
            lh_reply_t *reply = NULL;
            lh_client_call (client, "pathwayd", "add", body, body_size, &opts, &reply);
            ok = reply && lh_reply_status (reply) == 201;
            lh_reply_destroy (&reply);
        }
        int64_t took = zclock_usecs () - started;
        if (!ok)
            self->errors++;
        else
            for (size_t add = 0; add < adds && self->count < self->capacity; add++)
                self->latencies [self->count++] = took;
    }
    zchunk_destroy (&folded);
    lh_client_destroy (&client);
    return NULL;
}

static int
s_compare (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return (x > y) - (x < y);
}

typedef struct {
    double rate;                        //  adds per second
    double p50;                         //  µs
    double p99;                         //  µs
    double per_commit;                  //  writes per commit (0: n/a)
    size_t total;                       //  adds acknowledged
    size_t errors;                      //  failed adds
} s_result_t;


//  --------------------------------------------------------------------------
//  Run s_clients clients of one kind for s_seconds

static s_result_t
s_measure (s_kind_t kind, MDB_env *env, MDB_dbi dbi, lh_pathstore_t *store,
           const char *endpoint)
{
    int clients = kind == S_RAW_BATCH? 1: s_clients;
    s_client_t *state = (s_client_t *) zmalloc (clients * sizeof (s_client_t));
    pthread_t *threads = (pthread_t *) zmalloc (clients * sizeof (pthread_t));
    int64_t start = zclock_mono ();
    for (int index = 0; index < clients; index++) {
        state [index] = (s_client_t) {
            .kind = kind, .index = index, .env = env, .dbi = dbi, .store = store,
            .endpoint = endpoint, .until = start + s_seconds * 1000,
            .capacity = 1000000
        };
        state [index].latencies = (int64_t *) malloc (state [index].capacity * sizeof (int64_t));
        pthread_create (&threads [index], NULL, s_client_thread, &state [index]);
    }
    size_t total = 0, errors = 0;
    for (int index = 0; index < clients; index++) {
        pthread_join (threads [index], NULL);
        total += state [index].count;
        errors += state [index].errors;
    }
    double elapsed = (zclock_mono () - start) / 1000.0;
    int64_t *all = (int64_t *) malloc ((total? total: 1) * sizeof (int64_t));
    size_t filled = 0;
    for (int index = 0; index < clients; index++) {
        memcpy (all + filled, state [index].latencies, state [index].count * sizeof (int64_t));
        filled += state [index].count;
        free (state [index].latencies);
    }
    qsort (all, total, sizeof (int64_t), s_compare);
    s_result_t result = {
        .rate = total / elapsed,
        .p50 = total? all [total / 2]: 0,
        .p99 = total? all [(size_t) (total * 0.99)]: 0,
        .total = total,
        .errors = errors
    };
    free (all);
    free (state);
    free (threads);
    return result;
}

static int
s_compare_result (const void *a, const void *b)
{
    double x = ((const s_result_t *) a)->rate, y = ((const s_result_t *) b)->rate;
    return (x > y) - (x < y);
}

//  The spinner: busy at nice 19 until told to stop
static void *
s_spin_thread (void *args)
{
    setpriority (PRIO_PROCESS, (id_t) syscall (SYS_gettid), 19);
    while (atomic_load (&s_spinning))
        ;
    return NULL;
}

//  Remove a run's directory
static void
s_remove (const char *dir)
{
    char *command = zsys_sprintf ("rm -rf '%s'", dir);
    if (system (command) != 0)
        fprintf (stderr, "bench_pathway: could not remove %s\n", dir);
    zstr_free (&command);
}


//  --------------------------------------------------------------------------
//  One run of each row

static s_result_t
s_run_raw (const char *dir, bool batch)
{
    s_result_t result = { 0 };
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    zsys_dir_create ("%s", dir);
    if (mdb_env_create (&env)
    ||  mdb_env_set_mapsize (env, (size_t) 4 << 30)
    ||  mdb_env_open (env, dir, MDB_NOTLS, 0600)
    ||  mdb_txn_begin (env, NULL, 0, &txn)
    ||  mdb_dbi_open (txn, NULL, 0, &dbi)
    ||  mdb_txn_commit (txn)) {
        fprintf (stderr, "bench_pathway: cannot open LMDB in %s\n", dir);
        result.errors = 1;
        return result;
    }
    result = s_measure (batch? S_RAW_BATCH: S_RAW, env, dbi, NULL, NULL);
    result.per_commit = batch? s_clients: 1;
    mdb_env_close (env);
    s_remove (dir);
    return result;
}

static s_result_t
s_run_store (const char *dir)
{
    s_result_t result = { 0 };
    const char *error = NULL;
    lh_pathstore_t *store = lh_pathstore_open (dir, (size_t) 4 << 30, 256, &error);
    if (!store) {
        fprintf (stderr, "bench_pathway: %s\n", error);
        result.errors = 1;
        return result;
    }
    result = s_measure (S_STORE, NULL, 0, store, NULL);
    uint64_t commits = 0, writes = 0;
    lh_pathstore_commits (store, &commits, &writes);
    result.per_commit = commits? (double) writes / commits: 0;
    lh_pathstore_destroy (&store);
    s_remove (dir);
    return result;
}

static s_result_t
s_run_bus (const char *dir, const char *endpoint, const char *inproc, int workers)
{
    s_result_t result = { 0 };
    lh_config_t *config = lh_config_load (NULL, NULL);
    lh_config_set (config, "pathwayd/dir", dir);
    lh_config_set (config, "pathwayd/map_bytes", "4294967296");
    lh_link_t link = { .endpoint = inproc };
    lh_service_runner_t *service = lh_service_start (&lh_pathwayd_service, &link, config, workers);
    if (!service) {
        result.errors = 1;
        lh_config_destroy (&config);
        return result;
    }
    //  Ready when stats answers
    lh_link_t outside = { .endpoint = endpoint };
    lh_client_t *probe = lh_client_new (&outside, "bench-probe");
    for (int attempt = 0; attempt < 500; attempt++) {
        lh_call_opts_t opts = { .timeout_ms = 1000, .queue = true };
        lh_reply_t *reply = NULL;
        lh_client_call (probe, "pathwayd", "stats", NULL, 0, &opts, &reply);
        bool ready = reply && lh_reply_status (reply) == 200;
        lh_reply_destroy (&reply);
        if (ready)
            break;
    }
    result = s_measure (S_BUS, NULL, 0, NULL, endpoint);
    lh_client_destroy (&probe);
    lh_service_stop (&service);
    lh_config_destroy (&config);
    //  Writes per commit: the adds over the write transactions LMDB
    //  counted (the first one created the databases)
    const char *error = NULL;
    lh_pathstore_t *store = lh_pathstore_open (dir, (size_t) 4 << 30, 1, &error);
    lh_pathcounts_t counts;
    if (store && lh_pathstore_counts (store, &counts) == 0 && counts.transactions > 1)
        result.per_commit = (double) counts.total / (counts.transactions - 1);
    lh_pathstore_destroy (&store);
    s_remove (dir);
    return result;
}


//  --------------------------------------------------------------------------
//  Print one row (the median run by rate)

static void
s_row (const char *name, s_result_t *runs, int count, double anchor)
{
    qsort (runs, count, sizeof (s_result_t), s_compare_result);
    s_result_t *median = &runs [count / 2];
    size_t errors = 0;
    for (int index = 0; index < count; index++)
        errors += runs [index].errors;
    char per_commit [32] = "-";
    if (median->per_commit > 0)
        snprintf (per_commit, sizeof (per_commit), "%.1f", median->per_commit);
    printf ("| %s | %.0f | %.0f | %.0f | %s | %.2fx | %zu |\n", name, median->rate,
            median->p50, median->p99, per_commit, anchor > 0? median->rate / anchor: 0, errors);
}

int
main (int argc, char *argv [])
{
    int workers [4] = { 8, 16 };
    int worker_counts = 2;
    bool spin = false;
    for (int argn = 1; argn < argc; argn++) {
        if (streq (argv [argn], "--seconds") && argn + 1 < argc)
            s_seconds = atoi (argv [++argn]);
        else
        if (streq (argv [argn], "--runs") && argn + 1 < argc)
            s_runs = atoi (argv [++argn]);
        else
        if (streq (argv [argn], "--clients") && argn + 1 < argc)
            s_clients = atoi (argv [++argn]);
        else
        if (streq (argv [argn], "--dir") && argn + 1 < argc)
            s_base = argv [++argn];
        else
        if (streq (argv [argn], "--spin"))
            spin = true;
        else
        if (streq (argv [argn], "--workers") && argn + 1 < argc) {
            char *list = argv [++argn];
            worker_counts = 0;
            for (char *item = strtok (list, ","); item && worker_counts < 4; item = strtok (NULL, ","))
                workers [worker_counts++] = atoi (item);
        }
        else {
            fprintf (stderr, "usage: bench_pathway [--seconds S] [--runs N] [--clients C] "
                     "[--workers W,W..] [--dir DIR] [--spin]\n");
            return 2;
        }
    }
    if (s_runs < 1 || s_runs > S_RUNS_MAX || s_clients < 1 || s_clients > 256 || worker_counts < 1) {
        fprintf (stderr, "bench_pathway: runs 1..%d, clients 1..256, at least one worker count\n",
                 S_RUNS_MAX);
        return 2;
    }
    zsys_init ();
    zsys_set_logstream (NULL);
    zsys_handler_set (NULL);
    if (!s_base)
        s_base = getenv ("TMPDIR")? getenv ("TMPDIR"): "/tmp";
    char *base = zsys_sprintf ("%s/bench-pathway-XXXXXX", s_base);
    if (!mkdtemp (base)) {
        fprintf (stderr, "bench_pathway: cannot create a directory under %s\n", s_base);
        return 1;
    }

    //  A trace of the staffing loop, about 300 bytes
    s_content = lh_pack_new ();
    lh_pack_open_map (s_content);
    lh_pack_kv_str (s_content, "query", "3 forklift drivers, night shift, Toledo OH, OSHA certified");
    lh_pack_kv_str (s_content, "answer_id", "W-104233");
    lh_pack_kv_str (s_content, "answer_corpus", "workers");
    lh_pack_kv_double (s_content, "score", 0.87);
    lh_pack_kv_str (s_content, "notes", "confirmed by the roster; prefers nights; 12 miles from site; "
                    "forklift class IV; two prior fills with this client, both rated 5");
    lh_pack_close (s_content);
    size_t content_size;
    const void *content = lh_pack_data (s_content, &content_size);
    s_body = lh_pack_new ();
    lh_pack_open_map (s_body);
    lh_pack_str (s_body, "content");
    lh_pack_raw (s_body, content, content_size);
    lh_pack_close (s_body);

    //  The broker: tcp for the clients, inproc for the workers
    zactor_t *broker = zactor_new (lh_broker_actor, (void *) "bench");
    char *status = NULL, *endpoint = NULL, *detail = NULL;
    zsock_send (broker, "ss", "BIND", "tcp://127.0.0.1:*");
    zsock_recv (broker, "ss", &status, &endpoint);
    if (!status || !streq (status, "0")) {
        fprintf (stderr, "bench_pathway: the broker did not bind\n");
        return 1;
    }
    zstr_free (&status);
    const char *inproc = "inproc://bench-pathway";
    zsock_send (broker, "ss", "BIND", inproc);
    zsock_recv (broker, "ss", &status, &detail);
    zstr_free (&status);
    zstr_free (&detail);

    pthread_t spinner;
    if (spin) {
        atomic_store (&s_spinning, true);
        pthread_create (&spinner, NULL, s_spin_thread, NULL);
    }
    s_result_t raw [S_RUNS_MAX], batched [S_RUNS_MAX], store [S_RUNS_MAX], bus [4][S_RUNS_MAX];
    for (int run = 0; run < s_runs; run++) {
        char *dir = zsys_sprintf ("%s/raw-%d", base, run);
        raw [run] = s_run_raw (dir, false);
        zstr_free (&dir);
        dir = zsys_sprintf ("%s/batched-%d", base, run);
        batched [run] = s_run_raw (dir, true);
        zstr_free (&dir);
        dir = zsys_sprintf ("%s/store-%d", base, run);
        store [run] = s_run_store (dir);
        zstr_free (&dir);
        for (int index = 0; index < worker_counts; index++) {
            dir = zsys_sprintf ("%s/pathwayd-%d-%d", base, workers [index], run);
            bus [index][run] = s_run_bus (dir, endpoint, inproc, workers [index]);
            zstr_free (&dir);
        }
        fprintf (stderr, "run %d: raw %.0f/s, store %.0f/s, pathwayd x%d %.0f/s\n", run + 1,
                 raw [run].rate, store [run].rate, workers [0], bus [0][run].rate);
    }

    if (spin) {
        atomic_store (&s_spinning, false);
        pthread_join (spinner, NULL);
    }
    printf ("%d concurrent clients, one add in flight each, %d s per run, %zu-byte content, "
            "median of %d runs (A B C A B C ...)%s\n\n", s_clients, s_seconds, content_size, s_runs,
            spin? "; a busy thread at nice 19 throughout (--spin)": "");
    printf ("| row | adds/s | p50 µs | p99 µs | writes per commit | vs raw LMDB | errors |\n");
    printf ("|---|---|---|---|---|---|---|\n");
    qsort (raw, s_runs, sizeof (s_result_t), s_compare_result);
    double anchor = raw [s_runs / 2].rate;
    s_row ("raw LMDB put + commit (anchor)", raw, s_runs, anchor);
    char *name = zsys_sprintf ("raw LMDB, %d puts per commit, one thread", s_clients);
    s_row (name, batched, s_runs, anchor);
    zstr_free (&name);
    s_row ("lh_pathstore add, no bus", store, s_runs, anchor);
    for (int index = 0; index < worker_counts; index++) {
        name = zsys_sprintf ("pathwayd add over the bus, %d workers%s", workers [index],
                                   workers [index] == 8? " (default)": "");
        s_row (name, bus [index], s_runs, anchor);
        zstr_free (&name);
    }
    zstr_free (&endpoint);
    zactor_destroy (&broker);
    lh_pack_destroy (&s_content);
    lh_pack_destroy (&s_body);
    s_remove (base);
    zstr_free (&base);
    return 0;
}
