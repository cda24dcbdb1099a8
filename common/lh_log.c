/*  =========================================================================
    lh_log - one line per event: time, level, actor, trace id, message

    A line is

        2026-11-21T06:40:01.123456Z I storaged 4bf92f3577b34da6a3ce929d0e0e4736 put key=a/b

    time in UTC with microseconds (RFC 3339), one level letter (D I W E),
    the actor name or "-", the trace id or "-", then the message. Control
    characters in the message (a newline from a peer's error text, say)
    are written as '?' so that one event is always exactly one line.

    The whole line is built in memory and handed to one write(2) on stderr,
    under a mutex, so lines from several threads never interleave.
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
          const char *actor, const char *trace)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r (&now.tv_sec, &tm);
    if (!actor || !*actor)
        actor = "-";
    if (!trace || !*trace)
        trace = "-";
    int size = snprintf (buffer, capacity,
        "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %c %.64s %.64s ",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
        tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000,
        s_letters [level <= LH_LOG_ERROR? level: LH_LOG_ERROR], actor, trace);
    if (size < 0)
        return 0;
    return (size_t) size < capacity? (size_t) size: capacity - 1;
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
    char *line = stack;
    size_t prefix = s_prefix (stack, sizeof (stack), level, actor, trace);

    va_list args;
    va_start (args, format);
    int size = vsnprintf (stack + prefix, sizeof (stack) - prefix - 1, format, args);
    va_end (args);
    if (size < 0)
        size = 0;
    if ((size_t) size >= sizeof (stack) - prefix - 1) {
        //  Too long for the stack buffer: build the line on the heap
        line = (char *) malloc (prefix + (size_t) size + 2);
        if (line) {
            memcpy (line, stack, prefix);
            va_start (args, format);
            vsnprintf (line + prefix, (size_t) size + 1, format, args);
            va_end (args);
        }
        else {
            line = stack;
            size = (int) (sizeof (stack) - prefix - 2);
        }
    }
    //  One event, one line: no control characters inside the message
    char *scan = line + prefix;
    char *limit = scan + size;
    for (; scan < limit; scan++)
        if ((unsigned char) *scan < 0x20 || *scan == 0x7f)
            *scan = '?';
    *limit = '\n';
    s_write_all (line, prefix + (size_t) size + 1);
    if (line != stack)
        free (line);
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
    char actor [16];
    snprintf (actor, sizeof (actor), "t%d", (int) (intptr_t) arg);
    for (int index = 0; index < S_THREAD_LINES; index++)
        lh_info (actor, NULL, "line %d of %s %s", index, actor,
                 "padding-padding-padding-padding-padding-padding-padding-padding");
    return NULL;
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
    char *text = s_capture_end ();
    lh_log_set_level (LH_LOG_INFO);

    char *lines [8] = { NULL };
    int count = 0;
    char *saveptr = NULL;
    for (char *line = strtok_r (text, "\n", &saveptr); line && count < 8;
         line = strtok_r (NULL, "\n", &saveptr))
        lines [count++] = line;
    assert (count == 5);
    assert (streq (s_check_line (lines [0], 'I', "storaged", "4bf92f3577b34da6a3ce929d0e0e4736"),
                   "put key=a/b 4096 bytes"));
    assert (streq (s_check_line (lines [1], 'W', "-", "-"), "two?lines"));
    assert (streq (s_check_line (lines [2], 'D', "x", "-"), "now printed"));
    assert (streq (s_check_line (lines [3], 'E', "x", "-"), "an error"));
    assert (streq (s_check_line (lines [4], 'E', "big", "-"), big));
    free (big);
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
