/*  =========================================================================
    lh_acl - who may do what on the bus; see lh_acl.h

    Each list is kept as the text it was set to, split into entries once
    (at set), so a check is a walk over a handful of short strings.
    =========================================================================
*/

#include "lh_acl.h"

#define S_ROLES         6
#define S_LISTS         4
#define S_ENTRIES_MAX   256             //  entries in one list

//  The roles, in a fixed order (the index of a role in s_roles)
static const char *s_roles [S_ROLES] = { "actor", "gateway", "client", "admin", "tap", "mcp" };

//  The lists of a role
typedef enum { S_SERVE, S_CALL, S_PUBLISH, S_SUBSCRIBE } s_kind_t;
static const char *s_kinds [S_LISTS] = { "serve", "call", "publish", "subscribe" };

//  One entry of a list
typedef struct {
    char *service;                      //  publish/subscribe SERVICE=, or NULL
    char *pattern;                      //  the pattern (call, serve) or prefix
} s_entry_t;

//  One list, parsed
typedef struct {
    bool any;                           //  it has "*"
    size_t count;                       //  entries
    s_entry_t *entries;                 //  the entries other than "*"
} s_list_t;

struct _lh_acl_t {
    s_list_t lists [S_ROLES][S_LISTS];  //  per role, per kind
};

//  Every acl/ key and its default, from the one table of keys
typedef struct {
    const char *path;                   //  "acl/actor/call"
    const char *value;                  //  its default
} s_default_t;

#define LH_KEY(path, type, value, range, comment) { path, value },
static const s_default_t s_keys [] = {
#include "lh_config_keys.h"
    { NULL, NULL }
};
#undef LH_KEY


//  --------------------------------------------------------------------------
//  Index of a role, or -1

static int
s_role_index (const char *role)
{
    if (role)
        for (int index = 0; index < S_ROLES; index++)
            if (streq (role, s_roles [index]))
                return index;
    return -1;
}


//  --------------------------------------------------------------------------
//  Free a list's entries and empty it

static void
s_list_clear (s_list_t *list)
{
    for (size_t index = 0; index < list->count; index++) {
        free (list->entries [index].service);
        free (list->entries [index].pattern);
    }
    free (list->entries);
    memset (list, 0, sizeof (*list));
}


//  --------------------------------------------------------------------------
//  Is this a valid bus name: 1..64 bytes of [A-Za-z0-9_.:-]?

static bool
s_name_valid (const char *name, size_t size)
{
    if (size < 1 || size > LH_NAME_MAX)
        return false;
    for (size_t index = 0; index < size; index++) {
        char c = name [index];
        if (!(isalnum ((unsigned char) c) || c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
    }
    return true;
}


//  --------------------------------------------------------------------------
//  Check one entry of a list of a kind. Returns NULL when it is good, else
//  the sentence that says what an entry of that kind looks like.

static const char *
s_entry_check (s_kind_t kind, const char *entry, size_t size)
{
    if (kind == S_SERVE)
        return s_name_valid (entry, size)? NULL: "a service name or *";
    if (kind == S_CALL) {
        //  svc, svc.op or svc.*: a name, or a name ending ".*"
        if (size > 2 && entry [size - 1] == '*' && entry [size - 2] == '.')
            size -= 2;
        return s_name_valid (entry, size)? NULL: "svc, svc.op, svc.* or *";
    }
    const char *equals = memchr (entry, '=', size);
    const char *prefix = equals? equals + 1: entry;
    size_t prefix_size = size - (size_t) (prefix - entry);
    if (equals && !s_name_valid (entry, (size_t) (equals - entry)))
        return "PREFIX, SERVICE=PREFIX or *";
    if (prefix_size < 1 || prefix_size > LH_TOPIC_MAX)
        return "PREFIX, SERVICE=PREFIX or * (a prefix of 1 to 255 characters)";
    for (size_t index = 0; index < prefix_size; index++)
        if (prefix [index] < 0x21 || prefix [index] > 0x7e || prefix [index] == '=')
            return "PREFIX, SERVICE=PREFIX or * (printable, no blank, no '=')";
    return NULL;
}


//  --------------------------------------------------------------------------
//  Create an ACL holding the defaults of every acl/ key

lh_acl_t *
lh_acl_new (void)
{
    lh_acl_t *self = (lh_acl_t *) zmalloc (sizeof (lh_acl_t));
    assert (self);
    for (const s_default_t *key = s_keys; key->path; key++) {
        if (strncmp (key->path, "acl/", 4) != 0)
            continue;
        char *error = NULL;
        int rc = lh_acl_set (self, key->path + 4, key->value, &error);
        assert (rc == 0);               //  our own defaults
    }
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy; nulls the caller's pointer

void
lh_acl_destroy (lh_acl_t **self_p)
{
    assert (self_p);
    lh_acl_t *self = *self_p;
    if (self) {
        for (int role = 0; role < S_ROLES; role++)
            for (int kind = 0; kind < S_LISTS; kind++)
                s_list_clear (&self->lists [role][kind]);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Set one list, key "ROLE/KIND". Returns 0, or -1 with *error_p.

int
lh_acl_set (lh_acl_t *self, const char *key, const char *value, char **error_p)
{
    assert (self && key && error_p);
    *error_p = NULL;
    const char *slash = strchr (key, '/');
    char role [LH_NAME_MAX + 1] = "";
    if (slash && (size_t) (slash - key) <= LH_NAME_MAX)
        snprintf (role, sizeof (role), "%.*s", (int) (slash - key), key);
    int role_index = s_role_index (role);
    int kind = -1;
    for (int index = 0; slash && index < S_LISTS; index++)
        if (streq (slash + 1, s_kinds [index]))
            kind = index;
    if (role_index < 0 || kind < 0) {
        *error_p = zsys_sprintf ("acl/%s: no such list (acl/ROLE/serve|call|publish|"
                                 "subscribe, ROLE one of %s)", key, LH_ACL_ROLES);
        return -1;
    }
    if (!value)
        value = "";
    s_list_t list = { 0 };
    list.entries = (s_entry_t *) calloc (S_ENTRIES_MAX, sizeof (s_entry_t));
    assert (list.entries);
    const char *token = value;
    while (*token) {
        while (*token == ' ' || *token == ',' || *token == '\t')
            token++;
        size_t size = strcspn (token, ", \t");
        if (size == 0)
            break;
        if (size == 1 && *token == '*')
            list.any = true;
        else {
            const char *shape = s_entry_check ((s_kind_t) kind, token, size);
            if (!shape && list.count >= S_ENTRIES_MAX)
                shape = "at most 256 entries per list";
            if (shape) {
                *error_p = zsys_sprintf ("acl/%s: '%.*s' is not %s", key, (int) size,
                                         token, shape);
                s_list_clear (&list);
                return -1;
            }
            s_entry_t *entry = &list.entries [list.count++];
            const char *equals = kind >= S_PUBLISH? memchr (token, '=', size): NULL;
            if (equals) {
                entry->service = strndup (token, (size_t) (equals - token));
                entry->pattern = strndup (equals + 1, size - (size_t) (equals - token) - 1);
            }
            else
                entry->pattern = strndup (token, size);
        }
        token += size;
    }
    s_list_clear (&self->lists [role_index][kind]);
    self->lists [role_index][kind] = list;
    return 0;
}


//  --------------------------------------------------------------------------
//  Set every acl/ key from a config

int
lh_acl_load (lh_acl_t *self, lh_config_t *config, char **error_p)
{
    assert (self && config && error_p);
    for (const s_default_t *key = s_keys; key->path; key++) {
        if (strncmp (key->path, "acl/", 4) != 0)
            continue;
        char *error = NULL;
        if (lh_acl_set (self, key->path + 4, lh_config_str (config, key->path), &error)) {
            *error_p = zsys_sprintf ("config %s", error);
            free (error);
            return -1;
        }
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Is this one of the roles?

bool
lh_acl_role_valid (const char *role)
{
    return s_role_index (role) >= 0;
}


//  --------------------------------------------------------------------------
//  Is svc.op one of the broker's admin ops?

bool
lh_acl_admin_op (const char *svc, const char *op)
{
    return svc && op && streq (svc, "broker")
        && (streq (op, "bind") || streq (op, "unbind") || streq (op, "reload"));
}


//  --------------------------------------------------------------------------
//  Does a call (or serve) list allow svc, and op when not NULL? A pattern
//  is a service (any op), svc.*, or svc.op; service names may hold dots,
//  so the pattern is compared against svc first, then what follows it.

static bool
s_call_match (const s_list_t *list, const char *svc, const char *op)
{
    if (list->any)
        return true;
    size_t svc_size = strlen (svc);
    for (size_t index = 0; index < list->count; index++) {
        const char *pattern = list->entries [index].pattern;
        size_t size = strlen (pattern);
        if (size < svc_size || memcmp (pattern, svc, svc_size) != 0)
            continue;
        const char *rest = pattern + svc_size;
        if (*rest == 0)
            return true;
        if (op && rest [0] == '.' && (streq (rest + 1, "*") || streq (rest + 1, op)))
            return true;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  Does a publish/subscribe list admit text (a topic, or a SUB prefix)
//  from a connection serving service? An entry admits what starts with
//  its prefix.

static bool
s_topic_match (const s_list_t *list, const char *service, const char *text)
{
    if (list->any)
        return true;
    for (size_t index = 0; index < list->count; index++) {
        const s_entry_t *entry = &list->entries [index];
        if (entry->service && !(service && streq (entry->service, service)))
            continue;
        if (strncmp (text, entry->pattern, strlen (entry->pattern)) == 0)
            return true;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  May a peer of role offer svc?

bool
lh_acl_may_serve (lh_acl_t *self, const char *role, const char *svc)
{
    assert (self && svc);
    int index = s_role_index (role);
    return index == 0                   //  actor
        && s_call_match (&self->lists [index][S_SERVE], svc, NULL);
}


//  --------------------------------------------------------------------------
//  May role call svc.op?

bool
lh_acl_may_call (lh_acl_t *self, const char *role, const char *svc, const char *op)
{
    assert (self && svc && op);
    int index = s_role_index (role);
    if (index < 0)
        return false;
    if (lh_acl_admin_op (svc, op) && !streq (role, "admin"))
        return false;
    return s_call_match (&self->lists [index][S_CALL], svc, op);
}


//  --------------------------------------------------------------------------
//  May role publish topic from a connection serving service?

bool
lh_acl_may_publish (lh_acl_t *self, const char *role, const char *service,
                    const char *topic)
{
    assert (self && topic);
    int index = s_role_index (role);
    return index >= 0 && *topic
        && s_topic_match (&self->lists [index][S_PUBLISH], service, topic);
}


//  --------------------------------------------------------------------------
//  May role subscribe to prefix from a connection serving service?

bool
lh_acl_may_subscribe (lh_acl_t *self, const char *role, const char *service,
                      const char *prefix)
{
    assert (self && prefix);
    int index = s_role_index (role);
    return index >= 0 && s_topic_match (&self->lists [index][S_SUBSCRIBE], service, prefix);
}


//  --------------------------------------------------------------------------
//  Self test

void
lh_acl_test (bool verbose)
{
    printf (" * lh_acl: ");
    lh_acl_t *acl = lh_acl_new ();
    assert (acl);

    //  The defaults: actors serve and call anything but the admin ops;
    //  clients call anything but the admin ops; admin calls them too
    assert (lh_acl_may_serve (acl, "actor", "vectord"));
    assert (!lh_acl_may_serve (acl, "client", "vectord"));
    assert (!lh_acl_may_serve (acl, "admin", "vectord"));
    assert (!lh_acl_may_serve (acl, "nobody", "vectord"));
    assert (lh_acl_may_call (acl, "client", "echo", "echo"));
    assert (lh_acl_may_call (acl, "client", "broker", "stats"));
    assert (!lh_acl_may_call (acl, "client", "broker", "unbind"));
    assert (!lh_acl_may_call (acl, "gateway", "broker", "bind"));
    assert (!lh_acl_may_call (acl, "actor", "broker", "reload"));
    assert (lh_acl_may_call (acl, "admin", "broker", "unbind"));
    assert (!lh_acl_may_call (acl, "tap", "echo", "echo"));
    assert (!lh_acl_may_call (acl, "", "echo", "echo"));
    assert (lh_acl_admin_op ("broker", "reload") && !lh_acl_admin_op ("broker", "stats"));

    //  Events: catalogd's workers publish catalog.*, nobody else; actors
    //  subscribe to anything, clients to nothing, gateway and mcp to
    //  catalog.*, admin to anything
    assert (lh_acl_may_publish (acl, "actor", "catalogd", "catalog.changed"));
    assert (!lh_acl_may_publish (acl, "actor", "queryd", "catalog.changed"));
    assert (!lh_acl_may_publish (acl, "actor", NULL, "catalog.changed"));
    assert (!lh_acl_may_publish (acl, "actor", "catalogd", "vectors.changed"));
    assert (!lh_acl_may_publish (acl, "client", NULL, "catalog.changed"));
    assert (!lh_acl_may_publish (acl, "admin", NULL, "catalog.changed"));
    assert (lh_acl_may_subscribe (acl, "actor", NULL, "catalog.changed"));
    assert (lh_acl_may_subscribe (acl, "actor", NULL, ""));
    assert (!lh_acl_may_subscribe (acl, "client", NULL, "catalog."));
    assert (!lh_acl_may_subscribe (acl, "gateway", NULL, ""));
    assert (!lh_acl_may_publish (acl, "mcp", NULL, "catalog.changed"));
    //  The gateway (for /mcp) and lakehouse mcp hear of catalog changes
    assert (lh_acl_may_subscribe (acl, "gateway", NULL, "catalog.changed"));
    assert (lh_acl_may_subscribe (acl, "mcp", NULL, "catalog.changed"));
    assert (!lh_acl_may_subscribe (acl, "mcp", NULL, "workflow."));
    assert (lh_acl_may_call (acl, "mcp", "pathwayd", "search"));
    assert (!lh_acl_may_call (acl, "mcp", "broker", "unbind"));
    assert (lh_acl_may_subscribe (acl, "admin", NULL, ""));
    assert (!lh_acl_may_subscribe (acl, "tap", NULL, "x"));

    //  Call patterns: svc, svc.*, svc.op; dotted service names
    char *error = NULL;
    assert (lh_acl_set (acl, "client/call", "echo.echo, storaged.*, a.b ,queryd", &error) == 0);
    assert (lh_acl_may_call (acl, "client", "echo", "echo"));
    assert (!lh_acl_may_call (acl, "client", "echo", "sleep"));
    assert (lh_acl_may_call (acl, "client", "storaged", "put"));
    assert (lh_acl_may_call (acl, "client", "a.b", "op"));
    assert (lh_acl_may_call (acl, "client", "a", "b"));
    assert (lh_acl_may_call (acl, "client", "queryd", "sql"));
    assert (!lh_acl_may_call (acl, "client", "vectord", "add"));
    assert (lh_acl_set (acl, "client/call", "", &error) == 0);
    assert (!lh_acl_may_call (acl, "client", "echo", "echo"));
    //  Even with "*", the admin ops need role admin
    assert (lh_acl_set (acl, "client/call", "*", &error) == 0);
    assert (!lh_acl_may_call (acl, "client", "broker", "bind"));

    //  Topic patterns: PREFIX, SERVICE=PREFIX, *
    assert (lh_acl_set (acl, "client/publish", "ev., pathwayd=pathway.", &error) == 0);
    assert (lh_acl_may_publish (acl, "client", NULL, "ev.tick"));
    assert (!lh_acl_may_publish (acl, "client", NULL, "pathway.added"));
    assert (lh_acl_may_publish (acl, "client", "pathwayd", "pathway.added"));
    assert (!lh_acl_may_publish (acl, "client", NULL, ""));
    assert (lh_acl_set (acl, "client/subscribe", "ev.", &error) == 0);
    assert (lh_acl_may_subscribe (acl, "client", NULL, "ev."));
    assert (lh_acl_may_subscribe (acl, "client", NULL, "ev.tick"));
    assert (!lh_acl_may_subscribe (acl, "client", NULL, "ev"));
    assert (!lh_acl_may_subscribe (acl, "client", NULL, ""));

    //  Bad lists are refused with a sentence, and change nothing
    const char *bad [][2] = {
        { "client/call", "echo echo!" }, { "client/call", "bad name?" },
        { "client/serve", "a.*" }, { "client/publish", "=x" },
        { "client/publish", "svc=" }, { "client/publish", "a=b=c" },
        { "nobody/call", "*" }, { "client/write", "*" }, { "client", "*" },
    };
    for (size_t index = 0; index < sizeof (bad) / sizeof (bad [0]); index++) {
        assert (lh_acl_set (acl, bad [index][0], bad [index][1], &error) == -1);
        assert (error);
        if (verbose)
            printf ("\n   %s", error);
        zstr_free (&error);
    }
    assert (lh_acl_may_publish (acl, "client", NULL, "ev.tick"));

    //  From a config: the keys, or a message naming the key
    lh_config_t *config = lh_config_load (NULL, &error);
    assert (config);
    assert (lh_acl_load (acl, config, &error) == 0);
    assert (!lh_acl_may_publish (acl, "client", NULL, "ev.tick"));
    assert (lh_config_set (config, "acl/tap/publish", "a=") == 0);
    assert (lh_acl_load (acl, config, &error) == -1);
    assert (strstr (error, "config acl/tap/publish"));
    zstr_free (&error);
    lh_config_destroy (&config);
    assert (lh_acl_role_valid ("tap") && !lh_acl_role_valid ("broker"));
    lh_acl_destroy (&acl);
    assert (acl == NULL);
    printf ("OK\n");
}
