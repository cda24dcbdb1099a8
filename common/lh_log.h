/*  =========================================================================
    lh_log - one line per event: time, level, actor, trace id, message

        2026-11-21T06:40:01.123456Z I storaged 4bf92f3577b34da6a3ce929d0e0e4736 put key=a/b 4096 bytes

    Lines go to stderr; each line is written with one write() so lines from
    several threads never interleave. -v (lh_log_set_level (LH_LOG_DEBUG))
    adds debug lines.
    =========================================================================
*/

#ifndef LH_LOG_H_INCLUDED
#define LH_LOG_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LH_LOG_DEBUG = 0,
    LH_LOG_INFO,
    LH_LOG_WARN,
    LH_LOG_ERROR
} lh_log_level_t;

//  Set the lowest level printed (default LH_LOG_INFO)
void
    lh_log_set_level (lh_log_level_t level);

//  Is this level printed?
bool
    lh_log_enabled (lh_log_level_t level);

//  Log one line. actor and trace may be NULL ("-").
void
    lh_log (lh_log_level_t level, const char *actor, const char *trace,
            const char *format, ...) CHECK_PRINTF (4);

//  Log one line whose message is already formatted (size bytes, no
//  terminator needed): lh_log without printf, for a line per request
void
    lh_log_text (lh_log_level_t level, const char *actor, const char *trace,
                 const char *text, size_t size);

//  Hold this thread's lines and write them in batches: at lh_log_flush,
//  when 16 KiB are held, or when a line is logged and the oldest held is
//  100 ms old. For a thread that logs a line per event and flushes before
//  it waits (the gateway's HTTP threads). Lines stay whole and in order.
void
    lh_log_hold (void);

//  Write the lines this thread holds, with one write()
void
    lh_log_flush (void);

//  Write what this thread holds and go back to writing each line at once
void
    lh_log_release (void);

#define lh_debug(actor, trace, ...) \
    do { if (lh_log_enabled (LH_LOG_DEBUG)) lh_log (LH_LOG_DEBUG, actor, trace, __VA_ARGS__); } while (0)
#define lh_info(actor, trace, ...)  lh_log (LH_LOG_INFO, actor, trace, __VA_ARGS__)
#define lh_warn(actor, trace, ...)  lh_log (LH_LOG_WARN, actor, trace, __VA_ARGS__)
#define lh_error(actor, trace, ...) lh_log (LH_LOG_ERROR, actor, trace, __VA_ARGS__)

//  Self test of this class
void
    lh_log_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
