/*  =========================================================================
    fuzz_header - libFuzzer target for the LHB/1 header decoder and the
    bounded msgpack checker (the only code that reads wire msgpack)

    Built by `make fuzz` with clang -fsanitize=fuzzer and run under
    -rss_limit_mb / -malloc_limit_mb; built by `make` with replay_main.c as
    a corpus replayer that `make check` runs over tests/fuzz/corpus/header.
    =========================================================================
*/

#include "lh_proto.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    lh_header_t header;
    int rc = lh_header_decode (&header, data, size);
    assert (rc == 0 || rc == -1 || rc == -2);
    if (rc == 0) {
        //  Whatever decodes must encode, and decode again to the same
        uint8_t buffer [LH_HEADER_MAX];
        int encoded = lh_header_encode (&header, buffer, sizeof (buffer));
        assert (encoded > 0);
        lh_header_t again;
        assert (lh_header_decode (&again, buffer, encoded) == 0);
        assert (again.has == header.has && again.t == header.t);
        assert (again.id == header.id && again.dl == header.dl);
    }
    //  The same bytes as a body: checked, then unpacked only if safe
    lh_limits_t limits = { .max_depth = 32, .max_elements = 4096, .max_string = 65536 };
    msgpack_zone zone;
    msgpack_zone_init (&zone, 256);
    msgpack_object object;
    rc = lh_msgpack_unpack (data, size, &limits, &zone, &object);
    assert (rc == 0 || rc == -1 || rc == -2);
    msgpack_zone_destroy (&zone);
    return 0;
}
