/*  =========================================================================
    replay_main - replays a fuzz corpus through a libFuzzer target, as an
    ordinary test (SQLite's fuzzcheck idea): every file of every directory
    named on the command line is fed to LLVMFuzzerTestOneInput once.
    A crash or assert fails the test. Prints "N inputs replayed".
    =========================================================================
*/

#include <czmq.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

//  Feed one file to the target; return 0, or -1 if it can't be read
static int
s_replay_file (const char *path)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return -1;
    fseek (file, 0, SEEK_END);
    long size = ftell (file);
    fseek (file, 0, SEEK_SET);
    uint8_t *data = (uint8_t *) malloc (size > 0? size: 1);
    assert (data);
    size_t got = fread (data, 1, size > 0? size: 0, file);
    fclose (file);
    LLVMFuzzerTestOneInput (data, got);
    free (data);
    return 0;
}

int
main (int argc, char *argv [])
{
    size_t inputs = 0;
    for (int argn = 1; argn < argc; argn++) {
        zdir_t *dir = zdir_new (argv [argn], NULL);
        if (!dir) {
            if (s_replay_file (argv [argn]) == 0)
                inputs++;
            else {
                fprintf (stderr, "replay: cannot read %s\n", argv [argn]);
                return 1;
            }
            continue;
        }
        zlist_t *files = zdir_list (dir);
        for (zfile_t *file = (zfile_t *) zlist_first (files); file;
             file = (zfile_t *) zlist_next (files))
            if (s_replay_file (zfile_filename (file, NULL)) == 0)
                inputs++;
        zlist_destroy (&files);
        zdir_destroy (&dir);
    }
    printf ("%zu inputs replayed\n", inputs);
    return 0;
}
