/*  =========================================================================
    lh_http_pool - HTTP threads that each serve HTTP and the bus

    Each thread runs its own libmicrohttpd daemon in external epoll mode on
    a shared listening socket, and its own bus pump (lh_bus_pump.h). Its
    loop polls three things at once: the daemon's epoll descriptor, the
    pump's bus socket and the pool's stop signal. So a request taken on an
    HTTP thread is sent to the broker by that thread, and the reply wakes
    that same thread, which resumes the connection and answers it: no
    hand-off to another thread on the way in or out.

        lh_http_pool_t *pool = lh_http_pool_new (listen_fd, 4, 1024, s_start, self, &error);
        lh_http_pool_connect (pool, &link, "gateway");  //  now and every tick
        ...  //  in the daemon's access handler, on an HTTP thread:
        lh_bus_pump_t *pump = lh_http_pool_pump ();
        ...
        lh_http_pool_destroy (&pool);

    The start function creates one daemon from the flags and the listening
    socket it is given (a dup of listen_fd that the daemon owns and
    closes) with room for share connections; it runs on the thread calling
    lh_http_pool_new. Bus clients are made by lh_http_pool_connect, on the
    caller's thread (it waits for the broker's WELCOME), and handed to the
    HTTP threads that have none; until its thread has one, lh_http_pool_pump
    returns a pump that refuses requests, and the caller answers 503.
    Destroy stops every thread: pending bus requests are answered (reply
    NULL) and their connections resumed and answered, then the daemons stop.
    =========================================================================
*/

#ifndef LH_HTTP_POOL_H_INCLUDED
#define LH_HTTP_POOL_H_INCLUDED

#include "lh_bus_pump.h"
#include <microhttpd.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _lh_http_pool_t lh_http_pool_t;

//  Create one daemon with these flags on this listening socket (the daemon
//  owns it), for at most share connections. Returns NULL on failure.
typedef struct MHD_Daemon * (lh_http_pool_start_fn) (void *arg, unsigned flags,
                                                      int listen_fd, unsigned share);

//  Start threads HTTP threads on listen_fd (a bound, listening, non-
//  blocking socket; the caller keeps and closes its own descriptor),
//  sharing conn_limit connections. Returns NULL with *error_p on failure.
lh_http_pool_t *
    lh_http_pool_new (int listen_fd, int threads, unsigned conn_limit,
                      lh_http_pool_start_fn *start, void *arg, char **error_p);

//  Stop the threads; nulls the caller's pointer
void
    lh_http_pool_destroy (lh_http_pool_t **self_p);

//  Give a bus client on link, named name, to every thread that has none.
//  Waits for each WELCOME on the calling thread; stops at the first that
//  cannot be made. Returns the number of threads still without a client.
int
    lh_http_pool_connect (lh_http_pool_t *self, const lh_link_t *link, const char *name);

//  The bus pump of the calling HTTP thread; NULL on any other thread
lh_bus_pump_t *
    lh_http_pool_pump (void);

//  Self test of this class
void
    lh_http_pool_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
