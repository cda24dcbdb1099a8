/*  =========================================================================
    lh_corpus - turn a catalogued dataset into a vector corpus (`lakehouse
    corpus build`, SPEC 5.9 "Corpus build")

    Rows are read through queryd.sql in pages, in rowid order (keyset
    pagination: WHERE rowid > last ORDER BY rowid LIMIT batch, so every
    page costs the same however deep into the table it is); each row's
    text columns are joined into one text, embedded through embedd.embed,
    and added to a vectord index with the row's id and metadata. The three
    stages overlap: while batch N is added, batch N+1 is embedded and page
    N+2 read, all three calls in flight together. The index is created
    (with the embedder's dim, cosine) when it does not exist; re-running
    replaces the same ids, so nothing is duplicated. A batch whose embed
    or add fails (after three retries of a 429/503/504) is counted and
    reported, and the build goes on; a page that cannot be read ends it.

        lh_corpus_opts_t opts = { .dataset = "workers", .id_column = "worker_id",
                                  .text_columns = columns, .text_count = 2,
                                  .index = "workers" };
        lh_corpus_stats_t stats;
        char *error = NULL;
        int rc = lh_corpus_build (client, &opts, &stats, &error);
        //  0: every batch went in; 1: stats.failed_batches > 0; -1: error

    The command line (`lakehouse corpus build ...`) is lh_corpus_command.
    =========================================================================
*/

#ifndef LH_CORPUS_H_INCLUDED
#define LH_CORPUS_H_INCLUDED

#include "lh_client.h"
#include "lh_config.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_CORPUS_BATCH     256         //  rows per batch by default
#define LH_CORPUS_BATCH_MAX 10000       //  most rows per batch
#define LH_CORPUS_TIMEOUT   60000       //  deadline of each call by default, ms

//  Where a build is
typedef struct {
    uint64_t total;                     //  rows in the dataset (count(*) at the start)
    uint64_t read;                      //  rows read so far
    uint64_t added;                     //  rows added to the index
    uint64_t skipped;                   //  rows with no id or an empty text
    uint64_t batches;                   //  batches embedded and added
    uint64_t failed_batches;            //  batches that failed
    uint64_t failed_rows;               //  rows of those batches
    uint64_t index_count;               //  vectors in the index at the end
    int64_t elapsed_ms;                 //  since the start
} lh_corpus_stats_t;

//  Called after each step (final = false) and once at the end (true)
typedef void (lh_corpus_progress_fn) (void *arg, const lh_corpus_stats_t *stats, bool final);
//  Called for each failed batch with a sentence saying which and why
typedef void (lh_corpus_failure_fn) (void *arg, const char *message);

typedef struct {
    const char *dataset;                //  catalogued dataset (a queryd table)
    const char *id_column;              //  column holding each row's id
    const char **text_columns;          //  columns joined (", ") into the text
    size_t text_count;                  //  how many
    const char **metadata_columns;      //  columns copied into the metadata;
    size_t metadata_count;              //  0: the id and text columns
    const char *index;                  //  vectord index to fill
    const char *model;                  //  embedding model, or NULL (embedd's default)
    size_t batch;                       //  rows per batch; 0 = LH_CORPUS_BATCH
    size_t texts_max;                   //  texts per embedd call; 0 = 256
    size_t text_max;                    //  longer texts are cut (bytes); 0 = 65536
    uint32_t timeout_ms;                //  each call's deadline; 0 = LH_CORPUS_TIMEOUT
    lh_corpus_progress_fn *progress;    //  or NULL
    lh_corpus_failure_fn *failure;      //  or NULL
    void *arg;                          //  their argument
} lh_corpus_opts_t;

//  Build (or refresh) the corpus. Returns 0 when every batch was added, 1
//  when some failed (stats says how many; failure was told each), -1 on an
//  error that stopped the build (*error_p: a sentence, caller frees). The
//  client is used by this thread only, one step at a time.
int
    lh_corpus_build (lh_client_t *client, const lh_corpus_opts_t *opts,
                     lh_corpus_stats_t *stats, char **error_p);

//  `lakehouse corpus build --dataset NAME --id-column C --text-columns A,B
//  --index NAME [--metadata-columns X,Y] [--batch N] [--model M]
//  [--timeout-ms N]`: words are the arguments after "corpus". Connects as
//  buscall does (bus/endpoint, bus/cert else CERTS/admin.cert, the
//  broker's key), shows a progress line with rows/s and an ETA (rewritten
//  in place on a terminal, a line every 5 s otherwise), prints a summary.
//  Returns the exit code: 0, 1 (failed batches or an error), 2 (usage).
int
    lh_corpus_command (lh_config_t *config, zlist_t *words);

//  Self test of this class
void
    lh_corpus_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
