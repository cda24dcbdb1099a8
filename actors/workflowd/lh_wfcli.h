/*  =========================================================================
    lh_wfcli - `lakehouse workflow run FILE [--input k=v ...]`: run a
    workflow file through workflowd and show each node as it goes

    The file (YAML or JSON, docs/workflows.md) is sent as text to
    workflowd.workflow_run with wait false; then run_get is asked every
    100 ms and each node's change is printed. On a terminal the node table
    is redrawn in place; otherwise one line per change:

        +0.004s  embed     running     embedd.embed
        +0.011s  embed     succeeded   embedd.embed  (7 ms)
        ...
        run 01J... succeeded in 214 ms: 7 succeeded

    Inputs: --input NAME=TEXT gives a string, --input NAME:=JSON any JSON
    value (a number, a list, a map).

        lh_client_t *client = lh_client_new (&link, "workflow");
        zlist_t *inputs = zlist_new ();
        zlist_append (inputs, "dataset=workers");
        int rc = lh_wfcli_run (client, "nightly.yaml", inputs, stdout, false);
    =========================================================================
*/

#ifndef LH_WFCLI_H_INCLUDED
#define LH_WFCLI_H_INCLUDED

#include "lh_client.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_WFCLI_FILE_MAX   (16 * 1024 * 1024)  //  largest workflow file read

//  Run the workflow in path with inputs ("NAME=TEXT" or "NAME:=JSON"
//  strings), printing progress to out (redrawn in place when tty).
//  Returns the exit code: 0 the run succeeded, 1 it failed (or workflowd
//  refused it, or went away), 2 bad inputs or an unreadable file.
int
    lh_wfcli_run (lh_client_t *client, const char *path, zlist_t *inputs,
                  FILE *out, bool tty);

//  Self test of this class
void
    lh_wfcli_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
