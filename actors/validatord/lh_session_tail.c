/*  =========================================================================
    lh_session_tail - the newest rows of the session log, read from its end
    (see lh_session_tail.h)
    =========================================================================
*/

#include "lh_session_tail.h"
#include <fcntl.h>
#include <sys/stat.h>

//  --------------------------------------------------------------------------
//  Read the newest rows of a JSONL log

int
lh_session_tail_read (const char *path, size_t limit, const char *since,
                      size_t scan_max, json_t **rows_p, lh_session_tail_t *tail,
                      char **error_p)
{
    assert (path && rows_p && tail && error_p);
    memset (tail, 0, sizeof (*tail));
    *rows_p = NULL;
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        *rows_p = json_array ();
        return 0;
    }
    struct stat status;
    if (fd < 0 || fstat (fd, &status) || !S_ISREG (status.st_mode)) {
        *error_p = zsys_sprintf ("cannot read the session log %s: %s", path,
                                 fd < 0? strerror (errno): "not a regular file");
        if (fd >= 0)
            close (fd);
        return -1;
    }
    uint64_t size = (uint64_t) status.st_size;
    uint64_t start = size > scan_max? size - scan_max: 0;
    size_t want = (size_t) (size - start);
    char *buffer = (char *) malloc (want + 1);
    assert (buffer);
    size_t have = 0;
    while (have < want) {
        ssize_t rc = pread (fd, buffer + have, want - have, (off_t) (start + have));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;                      //  shorter than it was: read what is there
        have += (size_t) rc;
    }
    close (fd);
    buffer [have] = 0;
    tail->size = size;
    tail->scanned = have;

    //  Lines from the last back; a first line cut by the scan's start is
    //  not a row
    json_t *rows = json_array ();
    size_t end = have;
    bool older = false;
    while (end > 0 && !older) {
        size_t begin = end;
        while (begin > 0 && buffer [begin - 1] != '\n')
            begin--;
        if (begin == 0 && start > 0) {
            tail->truncated = true;     //  the scan ends inside a line
            break;
        }
        size_t length = end - begin;
        if (length && buffer [begin + length - 1] == '\r')
            length--;
        if (length) {
            json_error_t error;
            json_t *row = json_loadb (buffer + begin, length, JSON_REJECT_DUPLICATES, &error);
            if (!json_is_object (row))
                tail->skipped++;
            else {
                const char *stamp = json_string_value (json_object_get (row, "timestamp"));
                //  A row without a timestamp is never after since: left out
                bool after = !since || (stamp && strcmp (stamp, since) > 0);
                if (since && stamp && !after)
                    older = true;       //  from here back, all are older
                else
                if (after && json_array_size (rows) == limit) {
                    tail->truncated = true;
                    older = true;
                }
                else
                if (after)
                    json_array_append (rows, row);
            }
            json_decref (row);
        }
        end = begin? begin - 1: 0;
    }
    free (buffer);
    *rows_p = rows;
    return 0;
}


//  --------------------------------------------------------------------------
//  Self test: newest first, limit, since, a cut first line, junk lines

void
lh_session_tail_test (bool verbose)
{
    printf (" * lh_session_tail: ");
    char path [128];
    snprintf (path, sizeof (path), "/tmp/lh_session_tail_test_%d.jsonl", (int) getpid ());
    unlink (path);
    json_t *rows;
    lh_session_tail_t tail;
    char *error = NULL;
    assert (lh_session_tail_read (path, 10, NULL, 1024, &rows, &tail, &error) == 0);
    assert (json_array_size (rows) == 0 && !tail.truncated);
    json_decref (rows);

    FILE *file = fopen (path, "w");
    assert (file);
    for (int index = 1; index <= 5; index++)
        fprintf (file, "{\"timestamp\":\"2026-12-0%dT00:00:00.000000Z\",\"n\":%d,"
                       "\"attempts\":[{\"iteration\":0}]}\n", index, index);
    fprintf (file, "not json\n\n[1,2]\n{\"n\":6}\n");
    fclose (file);

    assert (lh_session_tail_read (path, 10, NULL, 1 << 20, &rows, &tail, &error) == 0);
    if (verbose)
        printf ("\n   %zu rows, %zu skipped", json_array_size (rows), tail.skipped);
    assert (json_array_size (rows) == 6 && tail.skipped == 2 && !tail.truncated);
    assert (json_integer_value (json_object_get (json_array_get (rows, 0), "n")) == 6);
    assert (json_integer_value (json_object_get (json_array_get (rows, 5), "n")) == 1);
    json_decref (rows);
    //  The limit
    assert (lh_session_tail_read (path, 2, NULL, 1 << 20, &rows, &tail, &error) == 0);
    assert (json_array_size (rows) == 2 && tail.truncated);
    json_decref (rows);
    //  since: rows after it (a row without a timestamp is left out)
    assert (lh_session_tail_read (path, 10, "2026-12-03T00:00:00.000000Z", 1 << 20,
                                  &rows, &tail, &error) == 0);
    assert (json_array_size (rows) == 2 && !tail.truncated);
    assert (json_integer_value (json_object_get (json_array_get (rows, 0), "n")) == 5);
    json_decref (rows);
    //  A scan that starts inside the file leaves its first, cut line out
    assert (lh_session_tail_read (path, 10, NULL, 150, &rows, &tail, &error) == 0);
    assert (tail.truncated && tail.scanned == 150);
    assert (json_array_size (rows) >= 1 && json_array_size (rows) < 6);
    json_decref (rows);
    //  Not a file
    assert (lh_session_tail_read ("/tmp", 10, NULL, 1024, &rows, &tail, &error) == -1 && error);
    zstr_free (&error);
    unlink (path);
    printf ("OK\n");
}
