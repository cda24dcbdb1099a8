/*  =========================================================================
    lh_config - the one ZPL configuration file, with every key known

    Keys are declared once in lh_config_keys.h (path, default, type,
    comment). Loading a file checks every key it holds against that table:
    an unknown key, or a value of the wrong type, fails with a message that
    names the key and the line; so does a value outside the range the
    table declares for the key (one policy: the start is refused). Lookups
    of a declared key always return a value (the file's or the default). conf/lakehouse.cfg is generated from
    the same table (`lakehouse config`), so it stays true.

        char *error = NULL;
        lh_config_t *config = lh_config_load ("conf/lakehouse.cfg", &error);
        if (!config) { fprintf (stderr, "%s\n", error); free (error); exit (1); }
        int64_t hb = lh_config_int (config, "broker/hb_ivl");
    =========================================================================
*/

#ifndef LH_CONFIG_H_INCLUDED
#define LH_CONFIG_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _lh_config_t lh_config_t;

//  Load a config file; path NULL loads only the defaults. Returns NULL on
//  error and sets *error_p to a sentence the caller frees, e.g.
//  "conf/x.cfg:12: unknown key 'broker/hb_ival'".
lh_config_t *
    lh_config_load (const char *path, char **error_p);

//  Destroy; nulls the caller's pointer
void
    lh_config_destroy (lh_config_t **self_p);

//  Set a key's value in memory (command-line overrides, tests). Returns 0,
//  or -1 if the key is unknown, or the value is not of the key's type or
//  outside its declared range.
int
    lh_config_set (lh_config_t *self, const char *path, const char *value);

//  Why a value cannot be set for a key, as a sentence the caller frees
//  ("key 'broker/hb_live' is '0': it must be 1..1000"), or NULL if it can
char *
    lh_config_explain (const char *path, const char *value);

//  Value of a declared key (the file's, else the default). Looking up an
//  undeclared key is a programming error (asserts).
const char *
    lh_config_str (lh_config_t *self, const char *path);
int64_t
    lh_config_int (lh_config_t *self, const char *path);
bool
    lh_config_bool (lh_config_t *self, const char *path);

//  Print every declared key with its comment and default, as ZPL
void
    lh_config_print_defaults (FILE *file);

//  Self test of this class
void
    lh_config_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
