/*  =========================================================================
    lh_selftest - runs the self tests of every class

    lh_selftest [--list] [--test NAME] [--verbose]

    The table of tests is generated at build time from every function
    "lh_NAME_test (bool verbose)" in the library. The last line printed is
    "N passed, N failed"; a failing test aborts (assert), so each test runs
    in a child process and a crash counts as a failure, not the end of the
    run.
    =========================================================================
*/

#include <czmq.h>
#include <sys/wait.h>

#define LH_SELFTEST(name) void name (bool verbose);
#include "lh_selftest_table.h"
#undef LH_SELFTEST

typedef struct {
    const char *name;                   //  function name
    void (*test) (bool verbose);        //  the test
} s_test_t;

#define LH_SELFTEST(name) { #name, name },
static const s_test_t s_tests [] = {
#include "lh_selftest_table.h"
    { NULL, NULL }
};
#undef LH_SELFTEST

//  --------------------------------------------------------------------------
//  Run one test in a child process; return true if it passed

static bool
s_run (const s_test_t *test, bool verbose)
{
    printf ("%s: ", test->name);
    fflush (stdout);
    int64_t start = zclock_usecs ();
    pid_t pid = fork ();
    if (pid == 0) {
        test->test (verbose);
        zsys_shutdown ();
        fflush (stdout);
        _exit (0);
    }
    int status = 0;
    waitpid (pid, &status, 0);
    bool ok = WIFEXITED (status) && WEXITSTATUS (status) == 0;
    printf ("%s (%.0f ms)\n", ok? "OK": "FAILED", (zclock_usecs () - start) / 1000.0);
    return ok;
}

int
main (int argc, char *argv [])
{
    bool verbose = false;
    const char *only = NULL;
    int argn;
    for (argn = 1; argn < argc; argn++) {
        if (streq (argv [argn], "--verbose") || streq (argv [argn], "-v"))
            verbose = true;
        else
        if (streq (argv [argn], "--list")) {
            for (const s_test_t *test = s_tests; test->name; test++)
                puts (test->name);
            return 0;
        }
        else
        if (streq (argv [argn], "--test") && argn + 1 < argc)
            only = argv [++argn];
        else {
            fprintf (stderr, "usage: lh_selftest [--list] [--test NAME] [--verbose]\n");
            return 2;
        }
    }
    int passed = 0, failed = 0;
    for (const s_test_t *test = s_tests; test->name; test++) {
        if (only && !streq (only, test->name))
            continue;
        if (s_run (test, verbose))
            passed++;
        else
            failed++;
    }
    if (only && passed + failed == 0) {
        fprintf (stderr, "lh_selftest: no test named '%s' (see --list)\n", only);
        return 2;
    }
    printf ("%d passed, %d failed\n", passed, failed);
    return failed? 1: 0;
}
