/*  =========================================================================
    lh_log - one line per event: time, level, actor, trace id, message

    A line is

        2026-11-21T06:40:01.123456Z I storaged 4bf92f3577b34da6a3ce929d0e0e4736 put key=a/b

    time in UTC with microseconds (RFC 3339), one level letter (D I W E),
    the actor name or "-", the trace id or "-", then the message. Control
    characters in the message (a newline from a peer's error text, say)
    are written as '?' so that one event is always exactly one line.

    The whole line is built in memory and handed to one write(2) on stderr,
    under a mutex, so lines from several threads never interleave. A thread
    that logs a line per request (the gateway's HTTP threads) may hold its
    lines and write them in batches, at the end of each turn of its loop.
    =========================================================================
*/

#include "lh_log.h"
#include <pthread.h>
#include <stdatomic.h>

//  Lines up to this size are built on the stack; longer ones are allocated
#define S_LINE_STACK    2048

static atomic_int s_level = LH_LOG_INFO;
static pthread_mutex_t s_write_lock = PTHREAD_MUTEX_INITIALIZER;

static const char s_letters [] = { 'D', 'I', 'W', 'E' };

//  The lines a holding thread has not written yet
#define S_HOLD_SIZE     16384           //  bytes held at most
#define S_HOLD_USECS    100000          //  age of the oldest line, at most

typedef struct {
    size_t used;                        //  bytes held
    int64_t since;                      //  when the oldest was logged (usecs)
    char data [S_HOLD_SIZE];
} s_held_t;

static __thread s_held_t *s_held = NULL;    //  NULL: this thread writes at once


//  --------------------------------------------------------------------------
//  Set the lowest level printed (default LH_LOG_INFO)

void
lh_log_set_level (lh_log_level_t level)
{
    if (level > LH_LOG_ERROR)
        level = LH_LOG_ERROR;
    atomic_store (&s_level, (int) level);
}


//  --------------------------------------------------------------------------
//  Is this level printed?

bool
lh_log_enabled (lh_log_level_t level)
{
    return (int) level >= atomic_load (&s_level);
}


//  --------------------------------------------------------------------------
//  Write all of a buffer to fd 2 with as few write(2) calls as the kernel
//  allows (one, unless interrupted or the pipe is short of room).

static void
s_write_all (const char *data, size_t size)
{
    pthread_mutex_lock (&s_write_lock);
    while (size > 0) {
        ssize_t rc = write (STDERR_FILENO, data, size);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            break;              //  Nowhere to complain; drop the line
        }
        data += rc;
        size -= (size_t) rc;
    }
    pthread_mutex_unlock (&s_write_lock);
}


//  --------------------------------------------------------------------------
//  Format the line prefix "TIME L ACTOR TRACE " into buffer, which has at
//  least 128 bytes. Returns its length.

static size_t
s_prefix (char *buffer, size_t capacity, lh_log_level_t level,
          const char *actor, const char *trace, int64_t *usecs_p)
{
    //  Date and time to the second are formatted once a second per thread
    static __thread time_t second = -1;
    static __thread char date [24];     //  "2026-11-21T06:40:01."
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    *usecs_p = (int64_t) now.tv_sec * 1000000 + now.tv_nsec / 1000;
    if (now.tv_sec != second) {
        struct tm tm;
        gmtime_r (&now.tv_sec, &tm);
        snprintf (date, sizeof (date), "%04u-%02u-%02uT%02u:%02u:%02u.",
                  (unsigned) (tm.tm_year + 1900) % 10000, (unsigned) (tm.tm_mon + 1) % 100,
                  (unsigned) tm.tm_mday % 100, (unsigned) tm.tm_hour % 100,
                  (unsigned) tm.tm_min % 100, (unsigned) tm.tm_sec % 100);
        second = now.tv_sec;
    }
    if (!actor || !*actor)
        actor = "-";
    if (!trace || !*trace)
        trace = "-";
    assert (capacity >= 20 + 10 + 2 * 65);
    char *at = buffer;
    memcpy (at, date, 20);
    at += 20;
    long usecs = now.tv_nsec / 1000;
    for (int digit = 5; digit >= 0; digit--, usecs /= 10)
        at [digit] = (char) ('0' + usecs % 10);
    at += 6;
    *at++ = 'Z';
    *at++ = ' ';
    *at++ = s_letters [level <= LH_LOG_ERROR? level: LH_LOG_ERROR];
    *at++ = ' ';
    size_t size = strnlen (actor, 64);
    memcpy (at, actor, size);
    at += size;
    *at++ = ' ';
    size = strnlen (trace, 64);
    memcpy (at, trace, size);
    at += size;
    *at++ = ' ';
    *at = 0;
    return (size_t) (at - buffer);
}


//  --------------------------------------------------------------------------
//  Log one line. actor and trace may be NULL ("-").

void
lh_log (lh_log_level_t level, const char *actor, const char *trace,
        const char *format, ...)
{
    if (!lh_log_enabled (level))
        return;
    char stack [S_LINE_STACK];
    char *text = stack;
    va_list args;
    va_start (args, format);
    int size = vsnprintf (stack, sizeof (stack), format, args);
    va_end (args);
    if (size < 0)
        size = 0;
    if ((size_t) size >= sizeof (stack)) {
        //  Too long for the stack buffer: format it again on the heap
        text = (char *) malloc ((size_t) size + 1);
        if (text) {
            va_start (args, format);
            vsnprintf (text, (size_t) size + 1, format, args);
            va_end (args);
        }
        else {
            text = stack;
            size = (int) sizeof (stack) - 1;
        }
    }
    lh_log_text (level, actor, trace, text, (size_t) size);
    if (text != stack)
        free (text);
}


//  --------------------------------------------------------------------------
//  Log one line whose message is already formatted (size bytes of text,
//  no terminator needed): lh_log without printf, for a caller that logs on
//  every request. The line is written at once, or held (lh_log_hold).

void
lh_log_text (lh_log_level_t level, const char *actor, const char *trace,
             const char *text, size_t size)
{
    if (!lh_log_enabled (level))
        return;
    char stack [S_LINE_STACK];
    char *line = stack;
    int64_t now;
    size_t prefix = s_prefix (stack, sizeof (stack), level, actor, trace, &now);
    if (size > sizeof (stack) - prefix - 1) {
        line = (char *) malloc (prefix + size + 1);
        if (line)
            memcpy (line, stack, prefix);
        else {
            line = stack;
            size = sizeof (stack) - prefix - 1;
        }
    }
    //  One event, one line: no control characters inside the message
    char *message = line + prefix;
    for (size_t offset = 0; offset < size; offset++) {
        unsigned char c = (unsigned char) text [offset];
        message [offset] = c < 0x20 || c == 0x7f? '?': (char) c;
    }
    message [size] = '\n';
    size_t length = prefix + size + 1;
    if (s_held) {
        if (length > S_HOLD_SIZE - s_held->used)
            lh_log_flush ();
        if (length <= S_HOLD_SIZE) {
            if (s_held->used == 0)
                s_held->since = now;
            memcpy (s_held->data + s_held->used, line, length);
            s_held->used += length;
            length = 0;
        }
        if (now - s_held->since >= S_HOLD_USECS)
            lh_log_flush ();
    }
    if (length)
        s_write_all (line, length);
    if (line != stack)
        free (line);
}


//  --------------------------------------------------------------------------
//  Hold this thread's lines from now on and write them in batches: at
//  lh_log_flush, when 16 KiB are held, or when a line is logged and the
//  oldest held is 100 ms old. Lines stay whole and in order.

void
lh_log_hold (void)
{
    if (!s_held) {
        s_held = (s_held_t *) malloc (sizeof (s_held_t));
        assert (s_held);
        s_held->used = 0;
    }
}


//  --------------------------------------------------------------------------
//  Write the lines this thread holds, with one write(2)

void
lh_log_flush (void)
{
    if (s_held && s_held->used) {
        s_write_all (s_held->data, s_held->used);
        s_held->used = 0;
    }
}


//  --------------------------------------------------------------------------
//  Write what this thread holds and go back to writing each line at once

void
lh_log_release (void)
{
    lh_log_flush ();
    free (s_held);
    s_held = NULL;
}


//  --------------------------------------------------------------------------
//  Self test of this class

//  Capture what fd 2 receives while the test runs: stderr goes to a
//  temporary file, restored by s_capture_end, which returns the text.

static int s_saved_stderr = -1;
static FILE *s_capture_file = NULL;

static void
s_capture_begin (void)
{
    s_capture_file = tmpfile ();
    assert (s_capture_file);
    fflush (stderr);
    s_saved_stderr = dup (STDERR_FILENO);
    assert (s_saved_stderr >= 0);
    int rc = dup2 (fileno (s_capture_file), STDERR_FILENO);
    assert (rc == STDERR_FILENO);
}

static char *
s_capture_end (void)
{
    int rc = dup2 (s_saved_stderr, STDERR_FILENO);
    assert (rc == STDERR_FILENO);
    close (s_saved_stderr);
    fseek (s_capture_file, 0, SEEK_END);
    long size = ftell (s_capture_file);
    rewind (s_capture_file);
    char *text = (char *) zmalloc ((size_t) size + 1);
    size_t got = fread (text, 1, (size_t) size, s_capture_file);
    assert (got == (size_t) size);
    fclose (s_capture_file);
    s_capture_file = NULL;
    return text;
}

//  Check one line's shape: TIME LEVEL ACTOR TRACE MESSAGE, returns message
static const char *
s_check_line (const char *line, char letter, const char *actor, const char *trace)
{
    //  2026-11-21T06:40:01.123456Z = 27 characters
    assert (strlen (line) > 28);
    for (int index = 0; index < 27; index++) {
        char c = line [index];
        if (index == 4 || index == 7)
            assert (c == '-');
        else
        if (index == 10)
            assert (c == 'T');
        else
        if (index == 13 || index == 16)
            assert (c == ':');
        else
        if (index == 19)
            assert (c == '.');
        else
        if (index == 26)
            assert (c == 'Z');
        else
            assert (isdigit ((unsigned char) c));
    }
    assert (line [27] == ' ');
    assert (line [28] == letter);
    assert (line [29] == ' ');
    const char *scan = line + 30;
    assert (strncmp (scan, actor, strlen (actor)) == 0);
    scan += strlen (actor);
    assert (*scan++ == ' ');
    assert (strncmp (scan, trace, strlen (trace)) == 0);
    scan += strlen (trace);
    assert (*scan++ == ' ');
    return scan;
}

#define S_THREADS       4
#define S_THREAD_LINES  500

static void *
s_log_thread (void *arg)
{
    int thread = (int) (intptr_t) arg;
    char actor [16];
    snprintf (actor, sizeof (actor), "t%d", thread);
    //  Half the threads hold their lines, and flush now and then
    if (thread % 2)
        lh_log_hold ();
    for (int index = 0; index < S_THREAD_LINES; index++) {
        lh_info (actor, NULL, "line %d of %s %s", index, actor,
                 "padding-padding-padding-padding-padding-padding-padding-padding");
        if (index % 7 == 0)
            lh_log_flush ();
    }
    lh_log_release ();
    return NULL;
}

//  Count the lines in text
static size_t
s_line_count (const char *text)
{
    size_t count = 0;
    for (; *text; text++)
        count += *text == '\n';
    return count;
}

void
lh_log_test (bool verbose)
{
    printf (" * lh_log: ");

    //  @selftest
    //  Levels: info by default, debug only after set_level
    assert (lh_log_enabled (LH_LOG_INFO));
    assert (!lh_log_enabled (LH_LOG_DEBUG));

    s_capture_begin ();
    lh_debug ("storaged", NULL, "not printed");
    lh_info ("storaged", "4bf92f3577b34da6a3ce929d0e0e4736", "put key=%s %d bytes", "a/b", 4096);
    lh_warn (NULL, NULL, "two\nlines");
    lh_log_set_level (LH_LOG_DEBUG);
    lh_debug ("x", "", "now printed");
    lh_log_set_level (LH_LOG_ERROR);
    lh_warn ("x", NULL, "not printed either");
    lh_error ("x", NULL, "an error");
    //  A line longer than the stack buffer
    char *big = (char *) zmalloc (10001);
    memset (big, 'b', 10000);
    lh_error ("big", NULL, "%s", big);
    //  Preformatted text: the same lines, control characters too
    lh_log_text (LH_LOG_ERROR, "text", "t1", "a\tb and more", 3);
    lh_log_text (LH_LOG_ERROR, "big", NULL, big, 10000);
    lh_log_text (LH_LOG_INFO, "text", NULL, "below the level", 15);
    char *text = s_capture_end ();
    lh_log_set_level (LH_LOG_INFO);

    char *lines [8] = { NULL };
    int count = 0;
    char *saveptr = NULL;
    for (char *line = strtok_r (text, "\n", &saveptr); line && count < 8;
         line = strtok_r (NULL, "\n", &saveptr))
        lines [count++] = line;
    assert (count == 7);
    assert (streq (s_check_line (lines [5], 'E', "text", "t1"), "a?b"));
    assert (streq (s_check_line (lines [6], 'E', "big", "-"), big));
    assert (streq (s_check_line (lines [0], 'I', "storaged", "4bf92f3577b34da6a3ce929d0e0e4736"),
                   "put key=a/b 4096 bytes"));
    assert (streq (s_check_line (lines [1], 'W', "-", "-"), "two?lines"));
    assert (streq (s_check_line (lines [2], 'D', "x", "-"), "now printed"));
    assert (streq (s_check_line (lines [3], 'E', "x", "-"), "an error"));
    assert (streq (s_check_line (lines [4], 'E', "big", "-"), big));
    free (big);
    free (text);

    //  A holding thread writes its lines when it flushes, or when it holds
    //  16 KiB; lh_log_release writes the rest, in order
    s_capture_begin ();
    lh_log_hold ();
    lh_info ("held", NULL, "one");
    lh_info ("held", NULL, "two");
    lh_log_hold ();                     //  again: no change
    text = s_capture_end ();
    assert (streq (text, ""));
    free (text);
    s_capture_begin ();
    lh_log_flush ();
    lh_log_flush ();                    //  nothing more to write
    text = s_capture_end ();
    assert (s_line_count (text) == 2);
    assert (strncmp (s_check_line (text, 'I', "held", "-"), "one\n", 4) == 0);
    assert (strstr (text, " two\n"));
    free (text);
    s_capture_begin ();
    for (int index = 0; index < 400; index++)
        lh_info ("held", NULL, "line %03d %s", index,
                 "padding-padding-padding-padding-padding-padding-padding-padding");
    size_t written = s_line_count (text = s_capture_end ());
    assert (written > 0 && written < 400);
    free (text);
    s_capture_begin ();
    lh_log_release ();
    lh_info ("held", NULL, "at once");
    text = s_capture_end ();
    assert (s_line_count (text) == 400 - written + 1);
    assert (strstr (text, "line 399 ") < strstr (text, "at once"));
    free (text);

    //  Several threads at once: every line whole, none lost
    s_capture_begin ();
    pthread_t threads [S_THREADS];
    for (int index = 0; index < S_THREADS; index++)
        pthread_create (&threads [index], NULL, s_log_thread, (void *) (intptr_t) index);
    for (int index = 0; index < S_THREADS; index++)
        pthread_join (threads [index], NULL);
    text = s_capture_end ();
    int seen [S_THREADS] = { 0 };
    count = 0;
    for (char *line = strtok_r (text, "\n", &saveptr); line;
         line = strtok_r (NULL, "\n", &saveptr)) {
        int thread = line [31] - '0';
        assert (thread >= 0 && thread < S_THREADS);
        char actor [4] = { 't', (char) ('0' + thread), 0 };
        const char *message = s_check_line (line, 'I', actor, "-");
        int number = -1;
        char name [8];
        int rc = sscanf (message, "line %d of %7s padding-", &number, name);
        assert (rc == 2);
        assert (number == seen [thread]);
        assert (streq (name, actor));
        seen [thread]++;
        count++;
    }
    assert (count == S_THREADS * S_THREAD_LINES);
    free (text);
    //  @end

    printf ("OK\n");
}
