/*  =========================================================================
    bench_storage - storaged PUT / GET through the bus (fs backend), beside
    the raw filesystem measured in the same run

    bench_storage [--runs N] [--small-count N] [--large-count N]
                  [--upload-mib N] [--dir DIR] [--out FILE]

    Everything runs in this process: a broker on tcp loopback, storaged
    (fs backend, in a fresh directory under DIR, default $TMPDIR or /tmp)
    with its default workers, and one client calling one object at a time.
    Two object sizes, 4 KiB and 1 MiB; for each, every run times, object by
    object with raw and ours alternating (so both meet the same disk: its
    fsync time swings widely on a shared VM):

      raw put    write a temp file, fsync it, rename it into place
      bus put    storaged.put (temp file, SHA-256, fsync, rename, directory
                 fsync) over the bus
      raw get    open, read the whole file, close
      bus get    storaged.get of the whole object over the bus

    on fresh keys each run (the gets read what that run's puts wrote, so
    both read from the page cache). Then one object of
    --upload-mib MiB (default 256; 0 = skip): raw = written in 8 MiB pieces,
    fsync, rename; ours = upload_begin, 8 MiB upload_parts, upload_commit;
    the two alternate run by run. Reports objects/s and MB/s (1 MB = 10^6
    bytes), the median over runs, and ours/raw: the median of the runs'
    ratios, with their range.
    =========================================================================
*/

#include "lh_proto.h"
#include "lh_client.h"
#include "lh_actor.h"
#include "lh_broker.h"
#include "storaged.h"
#include <sodium.h>

#define S_RUNS_MAX  15
#define S_PART      (8 * 1024 * 1024)   //  multipart part (storaged/part_max)

typedef struct {
    const char *name;                   //  "4 KiB"
    size_t size;                        //  object bytes
    int count;                          //  objects per run
} s_shape_t;

//  One timed loop: seconds taken, and whether every call succeeded
typedef struct {
    double seconds;                     //  wall time of the loop
    int errors;                         //  failed operations
} s_result_t;

static uint8_t *s_blob;                 //  object content (one part)


//  --------------------------------------------------------------------------
//  Monotonic seconds

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


//  --------------------------------------------------------------------------
//  Make object `index` of a run differ from the others (first 8 bytes)

static void
s_stamp (int run, int index)
{
    uint64_t stamp = ((uint64_t) run << 32) | (uint32_t) index;
    memcpy (s_blob, &stamp, sizeof (stamp));
}


//  --------------------------------------------------------------------------
//  Raw put: write + fsync + rename, one object at a time

static void
s_raw_put (const char *dir, const s_shape_t *shape, int run, int index, s_result_t *result)
{
    char tmp [PATH_MAX], path [PATH_MAX];
    snprintf (path, sizeof (path), "%s/raw-%d", dir, run);
    if (index == 0)
        mkdir (path, 0755);
    double start = s_now ();
    {
        s_stamp (run, index);
        snprintf (tmp, sizeof (tmp), "%s/.tmp-%d", dir, index);
        snprintf (path, sizeof (path), "%s/raw-%d/obj-%d", dir, run, index);
        int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0
        ||  write (fd, s_blob, shape->size) != (ssize_t) shape->size
        ||  fsync (fd)
        ||  close (fd)
        ||  rename (tmp, path))
            result->errors++;
    }
    result->seconds += s_now () - start;
}


//  --------------------------------------------------------------------------
//  Raw get: open + read + close, one object at a time

static void
s_raw_get (const char *dir, const s_shape_t *shape, int run, int index, uint8_t *buffer,
           s_result_t *result)
{
    char path [PATH_MAX];
    double start = s_now ();
    {
        snprintf (path, sizeof (path), "%s/raw-%d/obj-%d", dir, run, index);
        int fd = open (path, O_RDONLY | O_CLOEXEC);
        ssize_t got = fd < 0? -1: read (fd, buffer, shape->size);
        if (got != (ssize_t) shape->size)
            result->errors++;
        if (fd >= 0)
            close (fd);
    }
    result->seconds += s_now () - start;
}


//  --------------------------------------------------------------------------
//  Bus put: storaged.put {key, data}, one object at a time

static void
s_bus_put (lh_client_t *client, const s_shape_t *shape, int run, int index,
           s_result_t *result)
{
    lh_call_opts_t opts = { .timeout_ms = 30000, .queue = true };
    double start = s_now ();
    {
        s_stamp (run, index);
        char key [64];
        snprintf (key, sizeof (key), "bench/run-%d/obj-%d", run, index);
        //  {key, data: bin} packed once into a buffer sized for it (as a
        //  client that knows its payload does), not grown by lh_pack
        msgpack_sbuffer body;
        msgpack_sbuffer_init (&body);
        body.alloc = shape->size + 256;
        body.data = (char *) malloc (body.alloc);
        assert (body.data);
        msgpack_packer packer;
        msgpack_packer_init (&packer, &body, msgpack_sbuffer_write);
        msgpack_pack_map (&packer, 2);
        msgpack_pack_str (&packer, 3);
        msgpack_pack_str_body (&packer, "key", 3);
        msgpack_pack_str (&packer, strlen (key));
        msgpack_pack_str_body (&packer, key, strlen (key));
        msgpack_pack_str (&packer, 4);
        msgpack_pack_str_body (&packer, "data", 4);
        msgpack_pack_bin (&packer, shape->size);
        msgpack_pack_bin_body (&packer, s_blob, shape->size);
        lh_reply_t *reply = NULL;
        lh_client_call (client, "storaged", "put", body.data, body.size, &opts, &reply);
        if (lh_reply_status (reply) != 200)
            result->errors++;
        lh_reply_destroy (&reply);
        msgpack_sbuffer_destroy (&body);
    }
    result->seconds += s_now () - start;
}


//  --------------------------------------------------------------------------
//  Call storaged with a pack (destroyed); returns the status, and the
//  reply if reply_p is given

static uint32_t
s_call (lh_client_t *client, const char *op, lh_pack_t *pack, lh_reply_t **reply_p)
{
    lh_call_opts_t opts = { .timeout_ms = 60000, .queue = true };
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    lh_reply_t *reply = NULL;
    lh_client_call (client, "storaged", op, data, size, &opts, &reply);
    lh_pack_destroy (&pack);
    uint32_t status = lh_reply_status (reply);
    if (reply_p)
        *reply_p = reply;
    else
        lh_reply_destroy (&reply);
    return status;
}


//  --------------------------------------------------------------------------
//  Raw large put: write in part-size pieces, fsync, rename

static s_result_t
s_raw_upload (const char *dir, const s_shape_t *shape, int run)
{
    s_result_t result = { 0, 0 };
    char tmp [PATH_MAX], path [PATH_MAX];
    snprintf (tmp, sizeof (tmp), "%s/.tmp-big", dir);
    snprintf (path, sizeof (path), "%s/big-%d", dir, run);
    double start = s_now ();
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    for (size_t done = 0; fd >= 0 && done < shape->size; done += S_PART) {
        s_stamp (run, (int) (done / S_PART));
        if (write (fd, s_blob, S_PART) != S_PART)
            result.errors++;
    }
    if (fd < 0 || fsync (fd) || close (fd) || rename (tmp, path))
        result.errors++;
    result.seconds = s_now () - start;
    unlink (path);
    return result;
}


//  --------------------------------------------------------------------------
//  Bus large put: upload_begin, parts of S_PART in order, upload_commit

static s_result_t
s_bus_upload (lh_client_t *client, const s_shape_t *shape, int run)
{
    s_result_t result = { 0, 0 };
    char key [64];
    snprintf (key, sizeof (key), "_vectors/bench-%d", run);
    double start = s_now ();
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "key", key);
    lh_reply_t *reply = NULL;
    char *upload_id = NULL;
    if (s_call (client, "upload_begin", pack, &reply) == 200)
        upload_id = lh_obj_strdup (lh_obj_get (lh_reply_object (reply), "upload_id"));
    lh_reply_destroy (&reply);
    if (!upload_id) {
        result.errors++;
        return result;
    }
    uint64_t part = 1;
    for (size_t done = 0; done < shape->size; done += S_PART) {
        s_stamp (run, (int) (done / S_PART));
        //  Packed once into a buffer sized for it (see s_bus_put)
        msgpack_sbuffer body;
        msgpack_sbuffer_init (&body);
        body.alloc = S_PART + 256;
        body.data = (char *) malloc (body.alloc);
        assert (body.data);
        msgpack_packer packer;
        msgpack_packer_init (&packer, &body, msgpack_sbuffer_write);
        msgpack_pack_map (&packer, 3);
        msgpack_pack_str (&packer, 9);
        msgpack_pack_str_body (&packer, "upload_id", 9);
        msgpack_pack_str (&packer, strlen (upload_id));
        msgpack_pack_str_body (&packer, upload_id, strlen (upload_id));
        msgpack_pack_str (&packer, 4);
        msgpack_pack_str_body (&packer, "part", 4);
        msgpack_pack_uint64 (&packer, part++);
        msgpack_pack_str (&packer, 4);
        msgpack_pack_str_body (&packer, "data", 4);
        msgpack_pack_bin (&packer, S_PART);
        msgpack_pack_bin_body (&packer, s_blob, S_PART);
        lh_call_opts_t opts = { .timeout_ms = 60000, .queue = true };
        lh_reply_t *reply_part = NULL;
        lh_client_call (client, "storaged", "upload_part", body.data, body.size, &opts,
                        &reply_part);
        if (lh_reply_status (reply_part) != 200)
            result.errors++;
        lh_reply_destroy (&reply_part);
        msgpack_sbuffer_destroy (&body);
    }
    pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "upload_id", upload_id);
    if (s_call (client, "upload_commit", pack, NULL) != 200)
        result.errors++;
    result.seconds = s_now () - start;
    pack = lh_pack_new ();
    lh_pack_map (pack, 1);
    lh_pack_kv_str (pack, "key", key);
    s_call (client, "delete", pack, NULL);
    free (upload_id);
    return result;
}


//  --------------------------------------------------------------------------
//  Bus get: storaged.get {key}, the whole object, one at a time

static void
s_bus_get (lh_client_t *client, const s_shape_t *shape, int run, int index,
           s_result_t *result)
{
    lh_call_opts_t opts = { .timeout_ms = 30000, .queue = true };
    double start = s_now ();
    {
        char key [64];
        snprintf (key, sizeof (key), "bench/run-%d/obj-%d", run, index);
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_map (pack, 1);
        lh_pack_kv_str (pack, "key", key);
        size_t size;
        const void *data = lh_pack_data (pack, &size);
        lh_reply_t *reply = NULL;
        lh_client_call (client, "storaged", "get", data, size, &opts, &reply);
        const msgpack_object *bin = lh_reply_status (reply) == 200?
                                    lh_obj_get (lh_reply_object (reply), "data"): NULL;
        if (!bin || bin->type != MSGPACK_OBJECT_BIN || bin->via.bin.size != shape->size)
            result->errors++;
        lh_reply_destroy (&reply);
        lh_pack_destroy (&pack);
    }
    result->seconds += s_now () - start;
}


//  --------------------------------------------------------------------------
//  Median of n doubles (sorts them)

static int
s_double_compare (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y? -1: x > y? 1: 0;
}

static double
s_median (double *values, int count)
{
    qsort (values, (size_t) count, sizeof (double), s_double_compare);
    return count % 2? values [count / 2]: (values [count / 2 - 1] + values [count / 2]) / 2;
}


//  --------------------------------------------------------------------------
//  One table row: median rates over the runs of raw and ours

static void
s_report (FILE *file, const s_shape_t *shape, const char *op,
          s_result_t *raw, s_result_t *ours, int runs)
{
    double raw_rate [S_RUNS_MAX], our_rate [S_RUNS_MAX];
    int errors = 0;
    for (int run = 0; run < runs; run++) {
        raw_rate [run] = shape->count / raw [run].seconds;
        our_rate [run] = shape->count / ours [run].seconds;
        errors += raw [run].errors + ours [run].errors;
    }
    double ratios [S_RUNS_MAX];
    for (int run = 0; run < runs; run++)
        ratios [run] = our_rate [run] / raw_rate [run];
    double ratio = s_median (ratios, runs);
    double raw_median = s_median (raw_rate, runs);
    double our_median = s_median (our_rate, runs);
    double mb = (double) shape->size / 1e6;
    fprintf (file, "| %s | %s | %.0f | %.1f | %.0f | %.1f | %.2f× (%.2f–%.2f) | %d |\n",
             shape->name, op, raw_median, raw_median * mb, our_median, our_median * mb,
             ratio, ratios [0], ratios [runs - 1], errors);
    fflush (file);
}


int
main (int argc, char *argv [])
{
    int runs = 5, small_count = 400, large_count = 100, large_mib = 256;
    const char *out = NULL;
    const char *base = getenv ("TMPDIR")? getenv ("TMPDIR"): "/tmp";
    for (int argn = 1; argn < argc; argn++) {
        if (streq (argv [argn], "--runs") && argn + 1 < argc)
            runs = atoi (argv [++argn]);
        else
        if (streq (argv [argn], "--small-count") && argn + 1 < argc)
            small_count = atoi (argv [++argn]);
        else
        if (streq (argv [argn], "--large-count") && argn + 1 < argc)
            large_count = atoi (argv [++argn]);
        else
        if (streq (argv [argn], "--upload-mib") && argn + 1 < argc)
            large_mib = atoi (argv [++argn]) / 8 * 8;
        else
        if (streq (argv [argn], "--dir") && argn + 1 < argc)
            base = argv [++argn];
        else
        if (streq (argv [argn], "--out") && argn + 1 < argc)
            out = argv [++argn];
        else {
            fprintf (stderr, "usage: bench_storage [--runs N] [--small-count N] "
                             "[--large-count N] [--upload-mib N] [--dir DIR] [--out FILE]\n");
            return 2;
        }
    }
    runs = runs < 1? 1: runs > S_RUNS_MAX? S_RUNS_MAX: runs;
    small_count = small_count < 1? 1: small_count;
    large_count = large_count < 1? 1: large_count;
    zsys_init ();
    zsys_set_logstream (NULL);
    s_shape_t shapes [] = {
        { "4 KiB", 4096, small_count },
        { "1 MiB", 1024 * 1024, large_count }
    };
    s_blob = (uint8_t *) malloc (S_PART);
    uint8_t *buffer = (uint8_t *) malloc (1024 * 1024);
    assert (s_blob && buffer);
    randombytes_buf (s_blob, S_PART);

    char *root = zsys_sprintf ("%s/lh-bench-storage.XXXXXX", base);
    if (!mkdtemp (root)) {
        fprintf (stderr, "bench_storage: cannot create a directory under %s\n", base);
        return 1;
    }
    char *raw_dir = zsys_sprintf ("%s/raw", root);
    char *store_dir = zsys_sprintf ("%s/store", root);
    mkdir (raw_dir, 0755);

    zactor_t *broker = zactor_new (lh_broker_actor, (void *) "bench");
    char *status = NULL, *endpoint = NULL;
    zstr_sendx (broker, "CONFIGURE", "plain_role", "actor", NULL);     //  our workers
    zsock_recv (broker, "ss", &status, &endpoint);
    zstr_free (&status);
    zstr_free (&endpoint);
    zsock_send (broker, "ss", "BIND", "tcp://127.0.0.1:*");
    zsock_recv (broker, "ss", &status, &endpoint);
    if (!status || !streq (status, "0")) {
        fprintf (stderr, "bench_storage: broker did not bind: %s\n", endpoint? endpoint: "?");
        return 1;
    }
    free (status);
    lh_link_t link = { .endpoint = endpoint };
    lh_config_t *config = lh_config_load (NULL, NULL);
    assert (config);
    lh_config_set (config, "storaged/dir", store_dir);
    lh_service_runner_t *storaged = lh_service_start (&lh_storaged_service, &link, config, 0);
    if (!storaged) {
        fprintf (stderr, "bench_storage: storaged did not start\n");
        return 1;
    }
    lh_client_t *client = lh_client_new (&link, "bench-storage");
    assert (client);
    //  Wait until storaged answers
    for (int attempt = 0; attempt < 100; attempt++) {
        lh_pack_t *pack = lh_pack_new ();
        lh_pack_map (pack, 1);
        lh_pack_kv_str (pack, "key", "bench/none");
        size_t size;
        const void *data = lh_pack_data (pack, &size);
        lh_reply_t *reply = NULL;
        lh_client_call (client, "storaged", "head", data, size, NULL, &reply);
        uint32_t st = lh_reply_status (reply);
        lh_reply_destroy (&reply);
        lh_pack_destroy (&pack);
        if (st == 404)
            break;
        zclock_sleep (50);
    }

    FILE *file = out? fopen (out, "w"): stdout;
    if (!file)
        file = stdout;
    fprintf (file, "| size | op | raw obj/s | raw MB/s | ours obj/s | ours MB/s | ours/raw, median (min–max) | errors |\n");
    fprintf (file, "|---|---|---:|---:|---:|---:|---:|---:|\n");
    for (size_t index = 0; index < sizeof (shapes) / sizeof (shapes [0]); index++) {
        s_shape_t *shape = &shapes [index];
        s_result_t raw_put [S_RUNS_MAX], bus_put [S_RUNS_MAX];
        s_result_t raw_get [S_RUNS_MAX], bus_get [S_RUNS_MAX];
        memset (raw_put, 0, sizeof (raw_put));
        memset (bus_put, 0, sizeof (bus_put));
        memset (raw_get, 0, sizeof (raw_get));
        memset (bus_get, 0, sizeof (bus_get));
        //  Raw and ours alternate object by object, so both meet the
        //  same disk (its fsync time swings widely on a shared VM)
        for (int run = 0; run < runs; run++) {
            int tag = (int) index * 100 + run;
            for (int object = 0; object < shape->count; object++) {
                s_raw_put (raw_dir, shape, tag, object, &raw_put [run]);
                s_bus_put (client, shape, tag, object, &bus_put [run]);
            }
            for (int object = 0; object < shape->count; object++) {
                s_raw_get (raw_dir, shape, tag, object, buffer, &raw_get [run]);
                s_bus_get (client, shape, tag, object, &bus_get [run]);
            }
        }
        s_report (file, shape, "put", raw_put, bus_put, runs);
        s_report (file, shape, "get", raw_get, bus_get, runs);
    }
    //  A large object by multipart upload, beside write + fsync + rename
    s_shape_t large = { "256 MiB", (size_t) large_mib * 1024 * 1024, 1 };
    if (large_mib > 0) {
        s_result_t raw_up [S_RUNS_MAX], bus_up [S_RUNS_MAX];
        for (int run = 0; run < runs; run++) {
            raw_up [run] = s_raw_upload (raw_dir, &large, run);
            bus_up [run] = s_bus_upload (client, &large, run);
        }
        char name [32];
        snprintf (name, sizeof (name), "%d MiB", large_mib);
        large.name = name;
        s_report (file, &large, "upload (8 MiB parts)", raw_up, bus_up, runs);
    }
    if (file != stdout)
        fclose (file);

    lh_client_destroy (&client);
    lh_service_stop (&storaged);
    lh_config_destroy (&config);
    zactor_destroy (&broker);
    free (endpoint);
    char *command = zsys_sprintf ("rm -rf '%s'", root);
    if (system (command) != 0)
        fprintf (stderr, "bench_storage: could not remove %s\n", root);
    zstr_free (&command);
    zstr_free (&raw_dir);
    zstr_free (&store_dir);
    zstr_free (&root);
    free (s_blob);
    free (buffer);
    return 0;
}
