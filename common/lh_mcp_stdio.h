/*  =========================================================================
    lh_mcp_stdio - the MCP stdio transport: `lakehouse mcp`

    Newline-delimited JSON-RPC on stdin and stdout (MCP 2025-11-25
    "stdio"): each line read is one message for lh_mcp (lh_mcp.h), each
    answer and notification one line written; logs go to stderr only.
    The process is a bus client of its own: it connects to bus/endpoint
    as `lakehouse ingest` and buscall do, with bus/cert, else
    CERTS/mcp.cert (role client, made with the local set), and the
    broker's key, unless bus/curve is off.

    Requests do not wait for each other: each tool call goes out on the
    bus at once and is answered when its reply comes, so a ping or a
    cancellation is served while a long query runs. With 64 calls in
    flight stdin is not read until one is answered. catalog.changed
    events become notifications/resources/list_changed (and /updated for
    subscribed datasets). A line longer than mcp/body_max is dropped and
    answered -32600. At the end of stdin the calls in flight are answered,
    then the process exits 0; SIGINT and SIGTERM end it at once.

        int rc = lh_mcp_stdio_run (config, STDIN_FILENO, STDOUT_FILENO);
    =========================================================================
*/

#ifndef LH_MCP_STDIO_H_INCLUDED
#define LH_MCP_STDIO_H_INCLUDED

#include "lh_config.h"
#include "lh_client.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Serve MCP on in_fd / out_fd until in_fd ends or a signal. Connects to
//  the broker as the config says. Returns the exit code: 0, or 1 after
//  saying why on stderr (no broker, a certificate missing, out_fd gone).
int
    lh_mcp_stdio_run (lh_config_t *config, int in_fd, int out_fd);

//  The same over a client already connected (borrowed), for tests
int
    lh_mcp_stdio_serve (lh_config_t *config, lh_client_t *client, int in_fd, int out_fd);

//  Self test of this class
void
    lh_mcp_stdio_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
