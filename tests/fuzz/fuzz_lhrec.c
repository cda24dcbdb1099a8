/*  =========================================================================
    fuzz_lhrec - libFuzzer target for the .lhrec recording reader
    (lh_lhrec_open_buffer + lh_lhrec_next), which busreplay runs over
    files it did not write

    Built by `make fuzz` with clang -fsanitize=fuzzer and run under
    -rss_limit_mb / -malloc_limit_mb; built by `make` with replay_main.c as
    a corpus replayer that `make check` runs over tests/fuzz/corpus/lhrec.
    =========================================================================
*/

#include "lh_lhrec.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char *error = NULL;
    lh_lhrec_t *rec = lh_lhrec_open_buffer (data, size, 65536, &error);
    if (!rec) {
        free (error);
        return 0;
    }
    lh_lhrec_record_t record;
    int rc;
    while ((rc = lh_lhrec_next (rec, &record)) == 1) {
        assert (record.header_size <= LH_HEADER_MAX);
        assert (record.body_size <= 65536);
        assert (strlen (record.topic) <= LH_LHREC_TOPIC_MAX);
    }
    assert (rc == 0 || rc == -1 || rc == -2);
    if (rc < 0)
        assert (lh_lhrec_error (rec));
    lh_lhrec_destroy (&rec);
    return 0;
}
