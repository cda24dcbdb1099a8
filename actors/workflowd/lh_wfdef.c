/*  =========================================================================
    lh_wfdef - a workflow definition: parsed, checked, templates; see
    lh_wfdef.h

    A definition keeps the msgpack it was given, decoded once into its own
    zone: every node's input template points into that object, so building
    a node's input walks it and packs the result.

    Checks run in this order, so the first problem found is the one
    reported: the top-level keys, each node's keys, the needs (missing
    ones), cycles, services and ops, retries, then the templates (which
    need the transitive needs computed after the cycle check).
    =========================================================================
*/

#include "lh_wfdef.h"
#include "lh_json.h"
#include <yaml.h>

#define S_NODES_MAX_DEFAULT 256         //  nodes when the check gives no bound

//  One node
typedef struct {
    char *id;                           //  its id
    char *svc;                          //  service called
    char *op;                           //  op called
    const msgpack_object *input;        //  input template (in the def's object), or NULL
    size_t *needs;                      //  direct needs, as indexes
    size_t need_count;                  //  how many
    uint64_t *reach;                    //  bit set: every node it needs, transitively
    uint32_t timeout_ms;                //  0: not given
    uint32_t retries;                   //  retries asked for
} s_node_t;

struct _lh_wfdef_t {
    char *name;                         //  the workflow's name
    char *on;                           //  trigger topic prefix, or NULL
    void *packed;                       //  the definition as given, msgpack
    size_t packed_size;                 //  its size
    msgpack_zone zone;                  //  holds object
    msgpack_object object;              //  the definition, decoded
    s_node_t *nodes;                    //  sorted by id
    size_t count;                       //  how many
    size_t words;                       //  uint64_t words of a reach set
    const msgpack_object *declared;     //  the inputs key, or NULL
    char *required;                     //  required inputs, "a,b"
};

//  A template reference
typedef enum { S_REF_INPUT, S_REF_NODE } s_ref_kind_t;

typedef struct {
    s_ref_kind_t kind;                  //  input or node output
    const char *name;                   //  input name or node id
    size_t name_size;                   //  its size
    const char *path;                   //  the path inside, or NULL
    size_t path_size;                   //  its size
} s_ref_t;

//  One piece of a string: literal text or a template
typedef enum { S_PIECE_END, S_PIECE_TEXT, S_PIECE_REF, S_PIECE_ERROR } s_piece_kind_t;


//  --------------------------------------------------------------------------
//  Set an error; returns -1

static int
s_error (lh_wferror_t *error, const char *kind, const char *format, ...)
{
    snprintf (error->kind, sizeof (error->kind), "%s", kind);
    va_list args;
    va_start (args, format);
    vsnprintf (error->reason, sizeof (error->reason), format, args);
    va_end (args);
    return -1;
}


//  --------------------------------------------------------------------------
//  Is a msgpack string equal to text?

static bool
s_str_is (const msgpack_object *object, const char *text)
{
    return object->type == MSGPACK_OBJECT_STR && object->via.str.size == strlen (text)
        && memcmp (object->via.str.ptr, text, object->via.str.size) == 0;
}


//  --------------------------------------------------------------------------
//  A msgpack string as a fresh C string, or NULL if it is not a string of
//  1..max bytes of [A-Za-z0-9] and the characters in extra

static char *
s_name (const msgpack_object *object, size_t max, const char *extra)
{
    if (object->type != MSGPACK_OBJECT_STR || object->via.str.size == 0
    ||  object->via.str.size > max)
        return NULL;
    for (uint32_t index = 0; index < object->via.str.size; index++) {
        char c = object->via.str.ptr [index];
        if (!isalnum ((unsigned char) c) && !strchr (extra, c))
            return NULL;
    }
    char *name = (char *) malloc (object->via.str.size + 1);
    assert (name);
    memcpy (name, object->via.str.ptr, object->via.str.size);
    name [object->via.str.size] = 0;
    return name;
}


//  --------------------------------------------------------------------------
//  Is svc.op in a list of "svc.op", "svc.*" and "*" patterns?

bool
lh_wfdef_listed (const char *list, const char *svc, const char *op)
{
    if (!list)
        return false;
    size_t svc_size = strlen (svc), op_size = strlen (op);
    const char *item = list;
    while (*item) {
        while (*item == ' ' || *item == ',')
            item++;
        const char *end = item;
        while (*end && *end != ',')
            end++;
        size_t size = (size_t) (end - item);
        while (size && item [size - 1] == ' ')
            size--;
        if (size == 1 && *item == '*')
            return true;
        if (size > svc_size && memcmp (item, svc, svc_size) == 0 && item [svc_size] == '.') {
            const char *rest = item + svc_size + 1;
            size_t rest_size = size - svc_size - 1;
            if ((rest_size == 1 && *rest == '*')
            ||  (rest_size == op_size && memcmp (rest, op, op_size) == 0))
                return true;
        }
        item = end;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  Is name one of the items of a comma-separated list?

static bool
s_in_list (const char *list, const char *name)
{
    size_t size = strlen (name);
    const char *item = list;
    while (*item) {
        const char *comma = strchr (item, ',');
        size_t one = comma? (size_t) (comma - item): strlen (item);
        if (one == size && memcmp (item, name, size) == 0)
            return true;
        item += one + (comma? 1: 0);
    }
    return false;
}


//  --------------------------------------------------------------------------
//  Read the next piece of a template string at *at. Text pieces point into
//  text ("$${" gives the text "${"). Returns the piece's kind.

static s_piece_kind_t
s_piece (const char *text, size_t size, size_t *at, const char **piece, size_t *piece_size,
         s_ref_t *ref, lh_wferror_t *error)
{
    size_t start = *at;
    if (start >= size)
        return S_PIECE_END;
    if (size - start >= 3 && memcmp (text + start, "$${", 3) == 0) {
        *piece = text + start + 1;
        *piece_size = 2;
        *at = start + 3;
        return S_PIECE_TEXT;
    }
    if (size - start >= 2 && memcmp (text + start, "${", 2) == 0) {
        const char *expr = text + start + 2;
        const char *close = (const char *) memchr (expr, '}', size - start - 2);
        if (!close) {
            s_error (error, "bad_template", "'%.*s' opens a template with ${ that is not "
                     "closed with }", (int) (size < 80? size: 80), text);
            return S_PIECE_ERROR;
        }
        size_t expr_size = (size_t) (close - expr);
        *at = (size_t) (close - text) + 1;
        //  Segments: [A-Za-z0-9_:-]+ separated by single dots
        for (size_t index = 0; index < expr_size; index++) {
            char c = expr [index];
            bool dot = c == '.';
            if (!(isalnum ((unsigned char) c) || c == '_' || c == '-' || c == ':' || dot)
            ||  (dot && (index == 0 || index + 1 == expr_size || expr [index + 1] == '.'))) {
                s_error (error, "bad_template", "template ${%.*s}: write ${inputs.NAME}, "
                         "${inputs.NAME.PATH}, ${nodes.ID.output} or ${nodes.ID.output.PATH} "
                         "(segments of letters, digits, _ : -)", (int) expr_size, expr);
                return S_PIECE_ERROR;
            }
        }
        if (expr_size > 7 && memcmp (expr, "inputs.", 7) == 0) {
            ref->kind = S_REF_INPUT;
            ref->name = expr + 7;
            const char *dot = (const char *) memchr (ref->name, '.', expr_size - 7);
            ref->name_size = dot? (size_t) (dot - ref->name): expr_size - 7;
            ref->path = dot? dot + 1: NULL;
            ref->path_size = dot? (size_t) (expr + expr_size - dot - 1): 0;
            return S_PIECE_REF;
        }
        if (expr_size > 6 && memcmp (expr, "nodes.", 6) == 0) {
            ref->kind = S_REF_NODE;
            ref->name = expr + 6;
            const char *dot = (const char *) memchr (ref->name, '.', expr_size - 6);
            ref->name_size = dot? (size_t) (dot - ref->name): expr_size - 6;
            const char *rest = dot? dot + 1: NULL;
            size_t rest_size = dot? (size_t) (expr + expr_size - rest): 0;
            if (rest_size >= 6 && memcmp (rest, "output", 6) == 0
            &&  (rest_size == 6 || rest [6] == '.')) {
                ref->path = rest_size > 6? rest + 7: NULL;
                ref->path_size = rest_size > 6? rest_size - 7: 0;
                return S_PIECE_REF;
            }
            s_error (error, "bad_template", "template ${%.*s}: a node is named as "
                     "${nodes.ID.output} or ${nodes.ID.output.PATH}", (int) expr_size, expr);
            return S_PIECE_ERROR;
        }
        s_error (error, "bad_template", "template ${%.*s}: it must start with inputs. or nodes.",
                 (int) expr_size, expr);
        return S_PIECE_ERROR;
    }
    //  Text up to the next '$' that starts a template
    size_t end = start + 1;
    while (end < size && text [end] != '$')
        end++;
    *piece = text + start;
    *piece_size = end - start;
    *at = end;
    return S_PIECE_TEXT;
}


//  --------------------------------------------------------------------------
//  Is the string exactly one template? Fills ref if so.

static bool
s_exact (const char *text, size_t size, s_ref_t *ref)
{
    size_t at = 0;
    const char *piece;
    size_t piece_size;
    lh_wferror_t ignored;
    return size > 2 && text [0] == '$' && text [1] == '{'
        && s_piece (text, size, &at, &piece, &piece_size, ref, &ignored) == S_PIECE_REF
        && at == size;
}


//  --------------------------------------------------------------------------
//  Free a definition's nodes

static void
s_nodes_free (lh_wfdef_t *self)
{
    for (size_t index = 0; index < self->count; index++) {
        s_node_t *node = &self->nodes [index];
        free (node->id);
        free (node->svc);
        free (node->op);
        free (node->needs);
        free (node->reach);
    }
    free (self->nodes);
    self->nodes = NULL;
    self->count = 0;
}


//  --------------------------------------------------------------------------
//  Destroy a definition

void
lh_wfdef_destroy (lh_wfdef_t **self_p)
{
    assert (self_p);
    lh_wfdef_t *self = *self_p;
    if (self) {
        s_nodes_free (self);
        if (self->packed)
            msgpack_zone_destroy (&self->zone);
        free (self->packed);
        free (self->name);
        free (self->on);
        free (self->required);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Order nodes by id

static int
s_node_compare (const void *one, const void *two)
{
    return strcmp (((const s_node_t *) one)->id, ((const s_node_t *) two)->id);
}


//  --------------------------------------------------------------------------
//  Read one node's keys. Returns 0, or -1 with error set.

static int
s_node_read (lh_wfdef_t *self, s_node_t *node, const msgpack_object *value,
             const lh_wfcheck_t *check, lh_wferror_t *error)
{
    if (value->type != MSGPACK_OBJECT_MAP)
        return s_error (error, "bad_definition", "node '%s' must be a map with call, input, "
                        "needs, timeout_ms and retries", node->id);
    const msgpack_object *call = NULL;
    for (uint32_t index = 0; index < value->via.map.size; index++) {
        const msgpack_object *key = &value->via.map.ptr [index].key;
        const msgpack_object *item = &value->via.map.ptr [index].val;
        if (s_str_is (key, "call"))
            call = item;
        else
        if (s_str_is (key, "input"))
            node->input = item;
        else
        if (s_str_is (key, "needs")) {
            if (item->type != MSGPACK_OBJECT_ARRAY)
                return s_error (error, "bad_definition", "node '%s': needs must be a list of "
                                "node ids", node->id);
        }
        else
        if (s_str_is (key, "timeout_ms")) {
            uint64_t max = check->timeout_max_ms? check->timeout_max_ms: UINT32_MAX;
            if (item->type != MSGPACK_OBJECT_POSITIVE_INTEGER || item->via.u64 == 0
            ||  item->via.u64 > max)
                return s_error (error, "bad_definition", "node '%s': timeout_ms must be an "
                                "integer 1..%" PRIu64 " (workflowd/node_timeout_max_ms)",
                                node->id, max);
            node->timeout_ms = (uint32_t) item->via.u64;
        }
        else
        if (s_str_is (key, "retries")) {
            if (item->type != MSGPACK_OBJECT_POSITIVE_INTEGER || item->via.u64 > check->retries_max)
                return s_error (error, "bad_definition", "node '%s': retries must be an integer "
                                "0..%u (workflowd/retries_max)", node->id, check->retries_max);
            node->retries = (uint32_t) item->via.u64;
        }
        else
        if (s_str_is (key, "description")) {
            if (item->type != MSGPACK_OBJECT_STR)
                return s_error (error, "bad_definition", "node '%s': description must be text",
                                node->id);
        }
        else
            return s_error (error, "bad_definition", "node '%s': unknown key '%.*s' (a node has "
                            "call, input, needs, timeout_ms, retries, description)", node->id,
                            key->type == MSGPACK_OBJECT_STR? (int) key->via.str.size: 1,
                            key->type == MSGPACK_OBJECT_STR? key->via.str.ptr: "?");
    }
    if (!call)
        return s_error (error, "bad_definition", "node '%s' has no call (\"service.op\")", node->id);
    const char *dot = call->type == MSGPACK_OBJECT_STR?
                      (const char *) memchr (call->via.str.ptr, '.', call->via.str.size): NULL;
    msgpack_object svc = { .type = MSGPACK_OBJECT_STR }, op = { .type = MSGPACK_OBJECT_STR };
    if (dot) {
        svc.via.str.ptr = call->via.str.ptr;
        svc.via.str.size = (uint32_t) (dot - call->via.str.ptr);
        op.via.str.ptr = dot + 1;
        op.via.str.size = (uint32_t) (call->via.str.size - svc.via.str.size - 1);
    }
    node->svc = dot? s_name (&svc, LH_NAME_MAX, "_:-"): NULL;
    node->op = dot? s_name (&op, LH_NAME_MAX, "_.:-"): NULL;
    if (!node->svc || !node->op)
        return s_error (error, "bad_definition", "node '%s': call must be \"service.op\" (bus "
                        "names of letters, digits, _ . : -)", node->id);
    return 0;
}


//  --------------------------------------------------------------------------
//  Resolve each node's needs into indexes. Returns 0, or -1 with error.

static int
s_needs_read (lh_wfdef_t *self, const msgpack_object *nodes, lh_wferror_t *error)
{
    for (uint32_t entry = 0; entry < nodes->via.map.size; entry++) {
        const msgpack_object *value = &nodes->via.map.ptr [entry].val;
        const msgpack_object *key = &nodes->via.map.ptr [entry].key;
        char id [LH_WF_ID_MAX + 1];
        snprintf (id, sizeof (id), "%.*s", (int) key->via.str.size, key->via.str.ptr);
        s_node_t *node = &self->nodes [lh_wfdef_node_index (self, id)];
        const msgpack_object *needs = lh_obj_get (value, "needs");
        if (!needs)
            continue;
        node->needs = (size_t *) calloc (needs->via.array.size + 1, sizeof (size_t));
        assert (node->needs);
        for (uint32_t index = 0; index < needs->via.array.size; index++) {
            const msgpack_object *need = &needs->via.array.ptr [index];
            char *name = s_name (need, LH_WF_ID_MAX, "_-");
            int found = name? lh_wfdef_node_index (self, name): -1;
            if (found < 0) {
                s_error (error, "missing_dependency", "node '%s' needs '%.*s', which is not a "
                         "node of this workflow", node->id,
                         need->type == MSGPACK_OBJECT_STR? (int) need->via.str.size: 1,
                         need->type == MSGPACK_OBJECT_STR? need->via.str.ptr: "?");
                free (name);
                return -1;
            }
            free (name);
            bool known = false;
            for (size_t have = 0; have < node->need_count; have++)
                known |= node->needs [have] == (size_t) found;
            if (!known)
                node->needs [node->need_count++] = (size_t) found;
        }
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Depth-first walk for cycles; color 0 new, 1 on the path, 2 done. On a
//  cycle, writes it as "a -> b -> a" into error. Returns 0 or -1.

static int
s_cycle_walk (lh_wfdef_t *self, size_t index, uint8_t *color, size_t *path, size_t depth,
              lh_wferror_t *error)
{
    color [index] = 1;
    path [depth] = index;
    s_node_t *node = &self->nodes [index];
    for (size_t need = 0; need < node->need_count; need++) {
        size_t next = node->needs [need];
        if (color [next] == 1) {
            //  The cycle: from next's place on the path back to next
            size_t from = 0;
            while (path [from] != next)
                from++;
            char text [400] = "";
            size_t used = 0;
            for (size_t at = from; at <= depth && used < sizeof (text) - 80; at++)
                used += (size_t) snprintf (text + used, sizeof (text) - used, "%s -> ",
                                           self->nodes [path [at]].id);
            snprintf (text + used, sizeof (text) - used, "%s", self->nodes [next].id);
            return s_error (error, "cycle", "the needs form a cycle: %s (each node needs the "
                            "one after it)", text);
        }
        if (color [next] == 0 && s_cycle_walk (self, next, color, path, depth + 1, error))
            return -1;
    }
    color [index] = 2;
    return 0;
}


//  --------------------------------------------------------------------------
//  Compute each node's transitive needs (no cycles by now)

static void
s_reach (lh_wfdef_t *self, size_t index, uint8_t *done)
{
    if (done [index])
        return;
    s_node_t *node = &self->nodes [index];
    node->reach = (uint64_t *) calloc (self->words, sizeof (uint64_t));
    assert (node->reach);
    for (size_t need = 0; need < node->need_count; need++) {
        size_t next = node->needs [need];
        s_reach (self, next, done);
        node->reach [next / 64] |= 1ULL << (next % 64);
        for (size_t word = 0; word < self->words; word++)
            node->reach [word] |= self->nodes [next].reach [word];
    }
    done [index] = 1;
}


//  --------------------------------------------------------------------------
//  Is an input name declared? (declared is a list of names or a map)

static bool
s_declared (const msgpack_object *declared, const char *name, size_t size)
{
    if (declared->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t index = 0; index < declared->via.array.size; index++) {
            const msgpack_object *item = &declared->via.array.ptr [index];
            if (item->via.str.size == size && memcmp (item->via.str.ptr, name, size) == 0)
                return true;
        }
        return false;
    }
    for (uint32_t index = 0; index < declared->via.map.size; index++) {
        const msgpack_object *key = &declared->via.map.ptr [index].key;
        if (key->via.str.size == size && memcmp (key->via.str.ptr, name, size) == 0)
            return true;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  Add an input name to the required list, once

static void
s_require (zchunk_t *required, const char *name, size_t size)
{
    const char *list = (const char *) zchunk_data (required);
    size_t list_size = zchunk_size (required), at = 0;
    while (at < list_size) {
        const char *comma = (const char *) memchr (list + at, ',', list_size - at);
        size_t one = comma? (size_t) (comma - list - at): list_size - at;
        if (one == size && memcmp (list + at, name, size) == 0)
            return;
        at += one + 1;
    }
    if (list_size)
        zchunk_extend (required, ",", 1);
    zchunk_extend (required, name, size);
}


//  --------------------------------------------------------------------------
//  Check the templates of one value of node index's input (recursive)

static int
s_templates_check (lh_wfdef_t *self, size_t index, const msgpack_object *value,
                   zchunk_t *required, size_t depth, lh_wferror_t *error)
{
    s_node_t *node = &self->nodes [index];
    if (depth > LH_WF_DEPTH_MAX)
        return s_error (error, "bad_definition", "node '%s': input nested deeper than %d",
                        node->id, LH_WF_DEPTH_MAX);
    if (value->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t item = 0; item < value->via.array.size; item++)
            if (s_templates_check (self, index, &value->via.array.ptr [item], required,
                                   depth + 1, error))
                return -1;
        return 0;
    }
    if (value->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t item = 0; item < value->via.map.size; item++)
            if (s_templates_check (self, index, &value->via.map.ptr [item].val, required,
                                   depth + 1, error))
                return -1;
        return 0;
    }
    if (value->type != MSGPACK_OBJECT_STR)
        return 0;
    size_t at = 0;
    const char *piece;
    size_t piece_size;
    s_ref_t ref;
    s_piece_kind_t kind;
    while ((kind = s_piece (value->via.str.ptr, value->via.str.size, &at, &piece, &piece_size,
                            &ref, error)) != S_PIECE_END) {
        if (kind == S_PIECE_ERROR) {
            char *reason = zsys_sprintf ("node '%s': %s", node->id, error->reason);
            snprintf (error->reason, sizeof (error->reason), "%.*s",
                      (int) sizeof (error->reason) - 1, reason);
            zstr_free (&reason);
            return -1;
        }
        if (kind != S_PIECE_REF)
            continue;
        if (ref.kind == S_REF_INPUT) {
            bool event = self->on && ref.name_size == 5 && memcmp (ref.name, "event", 5) == 0;
            if (self->declared && !event && !s_declared (self->declared, ref.name, ref.name_size))
                return s_error (error, "unknown_input", "node '%s': template ${inputs.%.*s...} "
                                "names input '%.*s', which the workflow's inputs do not declare",
                                node->id, (int) ref.name_size, ref.name, (int) ref.name_size,
                                ref.name);
            if (!self->declared || event)
                s_require (required, ref.name, ref.name_size);
            continue;
        }
        char id [LH_WF_ID_MAX + 1];
        snprintf (id, sizeof (id), "%.*s", (int) (ref.name_size < LH_WF_ID_MAX? ref.name_size:
                                                 LH_WF_ID_MAX), ref.name);
        int other = ref.name_size <= LH_WF_ID_MAX? lh_wfdef_node_index (self, id): -1;
        if (other < 0)
            return s_error (error, "unknown_node", "node '%s': template ${nodes.%.*s.output...} "
                            "names node '%.*s', which is not a node of this workflow", node->id,
                            (int) ref.name_size, ref.name, (int) ref.name_size, ref.name);
        if (!(node->reach [other / 64] & (1ULL << (other % 64))))
            return s_error (error, "not_needed", "node '%s': template ${nodes.%s.output...} names "
                            "node '%s', which '%s' does not need (add it to needs: a node "
                            "reads only what finished before it)", node->id, id, id, node->id);
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Read the inputs declaration: a list of names or a map NAME -> default

static int
s_inputs_read (lh_wfdef_t *self, const msgpack_object *inputs, lh_wferror_t *error)
{
    if (inputs->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t index = 0; index < inputs->via.array.size; index++) {
            char *name = s_name (&inputs->via.array.ptr [index], LH_WF_ID_MAX, "_:-");
            if (!name)
                return s_error (error, "bad_definition", "inputs item %u must be a name (letters, "
                                "digits, _ : -)", index);
            free (name);
        }
    }
    else
    if (inputs->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t index = 0; index < inputs->via.map.size; index++) {
            char *name = s_name (&inputs->via.map.ptr [index].key, LH_WF_ID_MAX, "_:-");
            if (!name)
                return s_error (error, "bad_definition", "inputs key %u must be a name (letters, "
                                "digits, _ : -)", index);
            free (name);
        }
    }
    else
        return s_error (error, "bad_definition", "inputs must be a list of names or a map of "
                        "names to default values");
    self->declared = inputs;
    return 0;
}


//  --------------------------------------------------------------------------
//  Load and check a definition

lh_wfdef_t *
lh_wfdef_load (const msgpack_object *definition, const lh_wfcheck_t *check,
               lh_wferror_t *error)
{
    assert (definition && check && error);
    if (definition->type != MSGPACK_OBJECT_MAP) {
        s_error (error, "bad_definition", "a definition must be a map with name and nodes");
        return NULL;
    }
    lh_wfdef_t *self = (lh_wfdef_t *) zmalloc (sizeof (lh_wfdef_t));
    assert (self);
    //  Keep our own copy, decoded once
    lh_pack_t *pack = lh_pack_new ();
    lh_pack_object (pack, definition);
    const void *data = lh_pack_data (pack, &self->packed_size);
    self->packed = malloc (self->packed_size);
    assert (self->packed);
    memcpy (self->packed, data, self->packed_size);
    lh_pack_destroy (&pack);
    msgpack_zone_init (&self->zone, 4096);
    if (lh_msgpack_unpack (self->packed, self->packed_size, &lh_limits_default, &self->zone,
                           &self->object)) {
        s_error (error, "bad_definition", "the definition is nested too deeply or too large");
        goto refused;
    }
    const msgpack_object *object = &self->object, *nodes = NULL;
    for (uint32_t index = 0; index < object->via.map.size; index++) {
        const msgpack_object *key = &object->via.map.ptr [index].key;
        const msgpack_object *value = &object->via.map.ptr [index].val;
        if (s_str_is (key, "name")) {
            self->name = s_name (value, LH_WF_ID_MAX, "_.:-");
            if (!self->name) {
                s_error (error, "bad_definition", "name must be 1..%d characters of letters, "
                         "digits, _ . : -", LH_WF_ID_MAX);
                goto refused;
            }
        }
        else
        if (s_str_is (key, "on")) {
            if (value->type == MSGPACK_OBJECT_NIL)
                continue;
            if (value->type != MSGPACK_OBJECT_STR || value->via.str.size == 0
            ||  value->via.str.size > LH_TOPIC_MAX || memchr (value->via.str.ptr, 0, value->via.str.size)) {
                s_error (error, "bad_definition", "on must be an event topic (prefix), "
                         "1..%d bytes", LH_TOPIC_MAX);
                goto refused;
            }
            if (value->via.str.size >= 9 && memcmp (value->via.str.ptr, "workflow.", 9) == 0) {
                s_error (error, "bad_definition", "on: '%.*s' is one of the runner's own events "
                         "(workflow.*): a run could start itself without end",
                         (int) value->via.str.size, value->via.str.ptr);
                goto refused;
            }
            self->on = (char *) malloc (value->via.str.size + 1);
            assert (self->on);
            memcpy (self->on, value->via.str.ptr, value->via.str.size);
            self->on [value->via.str.size] = 0;
        }
        else
        if (s_str_is (key, "description")) {
            if (value->type != MSGPACK_OBJECT_STR) {
                s_error (error, "bad_definition", "description must be text");
                goto refused;
            }
        }
        else
        if (s_str_is (key, "inputs")) {
            if (s_inputs_read (self, value, error))
                goto refused;
        }
        else
        if (s_str_is (key, "nodes"))
            nodes = value;
        else {
            s_error (error, "bad_definition", "unknown key '%.*s' (a definition has name, on, "
                     "description, inputs, nodes)",
                     key->type == MSGPACK_OBJECT_STR? (int) key->via.str.size: 1,
                     key->type == MSGPACK_OBJECT_STR? key->via.str.ptr: "?");
            goto refused;
        }
    }
    if (!self->name) {
        s_error (error, "bad_definition", "a definition needs a name");
        goto refused;
    }
    size_t nodes_max = check->nodes_max? check->nodes_max: S_NODES_MAX_DEFAULT;
    if (!nodes || nodes->type != MSGPACK_OBJECT_MAP || nodes->via.map.size == 0
    ||  nodes->via.map.size > nodes_max) {
        s_error (error, "bad_definition", "nodes must be a map of 1..%zu nodes (ID: {call, "
                 "input, needs, ...})", nodes_max);
        goto refused;
    }

    //  The nodes, sorted by id
    self->nodes = (s_node_t *) calloc (nodes->via.map.size, sizeof (s_node_t));
    assert (self->nodes);
    for (uint32_t index = 0; index < nodes->via.map.size; index++) {
        self->nodes [index].id = s_name (&nodes->via.map.ptr [index].key, LH_WF_ID_MAX, "_-");
        self->count++;
        if (!self->nodes [index].id) {
            s_error (error, "bad_definition", "node ids must be 1..%d characters of letters, "
                     "digits, _ -", LH_WF_ID_MAX);
            goto refused;
        }
    }
    for (uint32_t index = 0; index < nodes->via.map.size; index++) {
        s_node_t *node = &self->nodes [index];
        if (s_node_read (self, node, &nodes->via.map.ptr [index].val, check, error))
            goto refused;
    }
    qsort (self->nodes, self->count, sizeof (s_node_t), s_node_compare);
    for (size_t index = 1; index < self->count; index++)
        if (streq (self->nodes [index].id, self->nodes [index - 1].id)) {
            s_error (error, "bad_definition", "node '%s' is defined twice", self->nodes [index].id);
            goto refused;
        }
    if (s_needs_read (self, nodes, error))
        goto refused;

    //  Cycles, then the transitive needs
    uint8_t *color = (uint8_t *) calloc (self->count, 1);
    size_t *path = (size_t *) calloc (self->count + 1, sizeof (size_t));
    assert (color && path);
    int rc = 0;
    for (size_t index = 0; index < self->count && rc == 0; index++)
        if (color [index] == 0)
            rc = s_cycle_walk (self, index, color, path, 0, error);
    free (path);
    if (rc == 0) {
        memset (color, 0, self->count);
        self->words = (self->count + 63) / 64;
        for (size_t index = 0; index < self->count; index++)
            s_reach (self, index, color);
    }
    free (color);
    if (rc)
        goto refused;

    //  Services and ops, retries
    for (size_t index = 0; index < self->count; index++) {
        s_node_t *node = &self->nodes [index];
        if (check->services && !streq (node->svc, "broker")) {
            const char *ops = (const char *) zhashx_lookup (check->services, node->svc);
            if (!ops) {
                s_error (error, "unknown_service", "node '%s' calls %s.%s, but no service '%s' "
                         "is registered on the bus (broker.services)", node->id, node->svc,
                         node->op, node->svc);
                goto refused;
            }
            if (*ops && !s_in_list (ops, node->op)) {
                char *listed = zsys_sprintf ("%s", ops);
                s_error (error, "unknown_op", "node '%s' calls %s.%s, but %s's workers offer "
                         "only: %.300s", node->id, node->svc, node->op, node->svc, listed);
                zstr_free (&listed);
                goto refused;
            }
        }
        if (node->retries > 0 && !lh_wfdef_listed (check->idempotent, node->svc, node->op)) {
            s_error (error, "not_idempotent", "node '%s' asks for retries, but %s.%s is not "
                     "declared idempotent (workflowd/idempotent): a retried call could "
                     "happen twice", node->id, node->svc, node->op);
            goto refused;
        }
    }

    //  Templates: known nodes that are needed, known inputs
    zchunk_t *required = zchunk_new (NULL, 64);
    for (size_t index = 0; index < self->count && rc == 0; index++)
        if (self->nodes [index].input)
            rc = s_templates_check (self, index, self->nodes [index].input, required, 0, error);
    if (rc == 0 && self->declared && self->declared->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t index = 0; index < self->declared->via.array.size; index++)
            s_require (required, self->declared->via.array.ptr [index].via.str.ptr,
                       self->declared->via.array.ptr [index].via.str.size);
    zchunk_extend (required, "", 1);
    self->required = strdup ((const char *) zchunk_data (required));
    zchunk_destroy (&required);
    if (rc)
        goto refused;
    if (self->on && *self->required && !streq (self->required, "event")) {
        s_error (error, "bad_definition", "an event-triggered workflow (on: %s) gets only "
                 "inputs.event, but it needs inputs %s (declare defaults in inputs: {NAME: "
                 "VALUE})", self->on, self->required);
        goto refused;
    }
    return self;

refused:
    lh_wfdef_destroy (&self);
    return NULL;
}


//  --------------------------------------------------------------------------
//  Accessors

const void *
lh_wfdef_packed (lh_wfdef_t *self, size_t *size)
{
    assert (self);
    *size = self->packed_size;
    return self->packed;
}

const char *
lh_wfdef_name (lh_wfdef_t *self)
{
    assert (self);
    return self->name;
}

const char *
lh_wfdef_on (lh_wfdef_t *self)
{
    assert (self);
    return self->on;
}

size_t
lh_wfdef_count (lh_wfdef_t *self)
{
    assert (self);
    return self->count;
}

const char *
lh_wfdef_node_id (lh_wfdef_t *self, size_t index)
{
    assert (self && index < self->count);
    return self->nodes [index].id;
}

const char *
lh_wfdef_node_svc (lh_wfdef_t *self, size_t index)
{
    assert (self && index < self->count);
    return self->nodes [index].svc;
}

const char *
lh_wfdef_node_op (lh_wfdef_t *self, size_t index)
{
    assert (self && index < self->count);
    return self->nodes [index].op;
}

const size_t *
lh_wfdef_node_needs (lh_wfdef_t *self, size_t index, size_t *count)
{
    assert (self && index < self->count);
    *count = self->nodes [index].need_count;
    return self->nodes [index].needs;
}

uint32_t
lh_wfdef_node_timeout (lh_wfdef_t *self, size_t index)
{
    assert (self && index < self->count);
    return self->nodes [index].timeout_ms;
}

uint32_t
lh_wfdef_node_retries (lh_wfdef_t *self, size_t index)
{
    assert (self && index < self->count);
    return self->nodes [index].retries;
}

const char *
lh_wfdef_required (lh_wfdef_t *self)
{
    assert (self);
    return self->required? self->required: "";
}


//  --------------------------------------------------------------------------
//  Index of a node id (binary search over the sorted nodes), or -1

int
lh_wfdef_node_index (lh_wfdef_t *self, const char *id)
{
    assert (self);
    size_t low = 0, high = self->count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        int order = self->nodes [middle].id? strcmp (self->nodes [middle].id, id): -1;
        if (order == 0)
            return (int) middle;
        if (order < 0)
            low = middle + 1;
        else
            high = middle;
    }
    return -1;
}


//  --------------------------------------------------------------------------
//  Pack the run's inputs: defaults overlaid by given

int
lh_wfdef_inputs (lh_wfdef_t *self, const msgpack_object *given, lh_pack_t *pack,
                 lh_wferror_t *error)
{
    assert (self);
    if (given && given->type == MSGPACK_OBJECT_NIL)
        given = NULL;
    if (given && given->type != MSGPACK_OBJECT_MAP)
        return s_error (error, "bad_inputs", "inputs must be a map of names to values");
    //  Every required input given
    const char *list = self->required? self->required: "";
    while (*list) {
        const char *comma = strchr (list, ',');
        size_t size = comma? (size_t) (comma - list): strlen (list);
        bool found = false;
        for (uint32_t index = 0; given && index < given->via.map.size && !found; index++) {
            const msgpack_object *key = &given->via.map.ptr [index].key;
            found = key->type == MSGPACK_OBJECT_STR && key->via.str.size == size
                 && memcmp (key->via.str.ptr, list, size) == 0;
        }
        if (!found)
            return s_error (error, "missing_input", "inputs.%.*s is required: the workflow's "
                            "templates read it", (int) size, list);
        list += size + (comma? 1: 0);
    }
    lh_pack_open_map (pack);
    //  Defaults not overridden, then everything given
    if (self->declared && self->declared->type == MSGPACK_OBJECT_MAP)
        for (uint32_t index = 0; index < self->declared->via.map.size; index++) {
            const msgpack_object *key = &self->declared->via.map.ptr [index].key;
            bool overridden = false;
            for (uint32_t other = 0; given && other < given->via.map.size && !overridden; other++) {
                const msgpack_object *mine = &given->via.map.ptr [other].key;
                overridden = mine->type == MSGPACK_OBJECT_STR && mine->via.str.size == key->via.str.size
                          && memcmp (mine->via.str.ptr, key->via.str.ptr, key->via.str.size) == 0;
            }
            if (!overridden) {
                lh_pack_object (pack, key);
                lh_pack_object (pack, &self->declared->via.map.ptr [index].val);
            }
        }
    for (uint32_t index = 0; given && index < given->via.map.size; index++) {
        lh_pack_object (pack, &given->via.map.ptr [index].key);
        lh_pack_object (pack, &given->via.map.ptr [index].val);
    }
    lh_pack_close (pack);
    return 0;
}


//  --------------------------------------------------------------------------
//  The value at a dotted path inside root (numbers index arrays), or NULL

static const msgpack_object *
s_lookup (const msgpack_object *root, const char *path, size_t size)
{
    const msgpack_object *value = root;
    size_t at = 0;
    while (value && at < size) {
        const char *dot = (const char *) memchr (path + at, '.', size - at);
        size_t segment = dot? (size_t) (dot - path - at): size - at;
        const char *name = path + at;
        const msgpack_object *next = NULL;
        if (value->type == MSGPACK_OBJECT_MAP) {
            for (uint32_t index = 0; index < value->via.map.size && !next; index++) {
                const msgpack_object *key = &value->via.map.ptr [index].key;
                if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == segment
                &&  memcmp (key->via.str.ptr, name, segment) == 0)
                    next = &value->via.map.ptr [index].val;
            }
        }
        else
        if (value->type == MSGPACK_OBJECT_ARRAY && segment > 0 && segment <= 9) {
            uint64_t item = 0;
            bool digits = true;
            for (size_t index = 0; index < segment && digits; index++) {
                digits = isdigit ((unsigned char) name [index]);
                item = item * 10 + (uint64_t) (name [index] - '0');
            }
            if (digits && item < value->via.array.size)
                next = &value->via.array.ptr [item];
        }
        value = next;
        at += segment + 1;
    }
    return value;
}


//  --------------------------------------------------------------------------
//  Resolve a reference against the inputs and outputs; NULL with error

static const msgpack_object *
s_resolve (lh_wfdef_t *self, const s_ref_t *ref, const msgpack_object *inputs,
           const msgpack_object *const *outputs, lh_wferror_t *error)
{
    const msgpack_object *root;
    const char *what;
    if (ref->kind == S_REF_INPUT) {
        char name [LH_WF_ID_MAX + 1];
        snprintf (name, sizeof (name), "%.*s", (int) ref->name_size, ref->name);
        root = lh_obj_get (inputs, name);
        what = "inputs";
    }
    else {
        char id [LH_WF_ID_MAX + 1];
        snprintf (id, sizeof (id), "%.*s", (int) ref->name_size, ref->name);
        int index = lh_wfdef_node_index (self, id);
        root = index >= 0 && outputs? outputs [index]: NULL;
        what = "nodes";
    }
    const msgpack_object *value = root? s_lookup (root, ref->path, ref->path_size): NULL;
    if (!value)
        s_error (error, "no_value", "template ${%s.%.*s%s%s%.*s}: there is no value there",
                 what, (int) ref->name_size, ref->name, ref->kind == S_REF_NODE? ".output": "",
                 ref->path? ".": "", (int) ref->path_size, ref->path? ref->path: "");
    return value;
}


//  --------------------------------------------------------------------------
//  Append a value as text (for a template inside a longer string)

static void
s_text (zchunk_t *out, const msgpack_object *value)
{
    char number [48];
    switch (value->type) {
        case MSGPACK_OBJECT_STR:
            zchunk_extend (out, value->via.str.ptr, value->via.str.size);
            return;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            snprintf (number, sizeof (number), "%" PRIu64, value->via.u64);
            break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            snprintf (number, sizeof (number), "%" PRId64, value->via.i64);
            break;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            snprintf (number, sizeof (number), "%.15g", value->via.f64);
            if (strtod (number, NULL) != value->via.f64)
                snprintf (number, sizeof (number), "%.17g", value->via.f64);
            break;
        case MSGPACK_OBJECT_BOOLEAN:
            snprintf (number, sizeof (number), "%s", value->via.boolean? "true": "false");
            break;
        case MSGPACK_OBJECT_NIL:
            snprintf (number, sizeof (number), "null");
            break;
        default: {
            lh_pack_t *pack = lh_pack_new ();
            lh_pack_object (pack, value);
            size_t size;
            const void *data = lh_pack_data (pack, &size);
            char *json = lh_json_text_from_msgpack (data, size, NULL, NULL);
            if (json)
                zchunk_extend (out, json, strlen (json));
            free (json);
            lh_pack_destroy (&pack);
            return;
        }
    }
    zchunk_extend (out, number, strlen (number));
}


//  --------------------------------------------------------------------------
//  Pack one value of an input template, templates replaced (recursive)

static int
s_build (lh_wfdef_t *self, const msgpack_object *value, const msgpack_object *inputs,
         const msgpack_object *const *outputs, lh_pack_t *pack, lh_wferror_t *error)
{
    if (value->type == MSGPACK_OBJECT_ARRAY) {
        lh_pack_open_array (pack);
        for (uint32_t index = 0; index < value->via.array.size; index++)
            if (s_build (self, &value->via.array.ptr [index], inputs, outputs, pack, error))
                return -1;
        lh_pack_close (pack);
        return 0;
    }
    if (value->type == MSGPACK_OBJECT_MAP) {
        lh_pack_open_map (pack);
        for (uint32_t index = 0; index < value->via.map.size; index++) {
            lh_pack_object (pack, &value->via.map.ptr [index].key);
            if (s_build (self, &value->via.map.ptr [index].val, inputs, outputs, pack, error))
                return -1;
        }
        lh_pack_close (pack);
        return 0;
    }
    if (value->type != MSGPACK_OBJECT_STR || !memmem (value->via.str.ptr, value->via.str.size, "${", 2)) {
        lh_pack_object (pack, value);
        return 0;
    }
    s_ref_t ref;
    if (s_exact (value->via.str.ptr, value->via.str.size, &ref)) {
        const msgpack_object *found = s_resolve (self, &ref, inputs, outputs, error);
        if (!found)
            return -1;
        lh_pack_object (pack, found);
        return 0;
    }
    zchunk_t *text = zchunk_new (NULL, value->via.str.size + 64);
    size_t at = 0;
    const char *piece;
    size_t piece_size;
    s_piece_kind_t kind;
    int rc = 0;
    while (rc == 0 && (kind = s_piece (value->via.str.ptr, value->via.str.size, &at, &piece,
                                       &piece_size, &ref, error)) != S_PIECE_END) {
        if (kind == S_PIECE_TEXT)
            zchunk_extend (text, piece, piece_size);
        else
        if (kind == S_PIECE_REF) {
            const msgpack_object *found = s_resolve (self, &ref, inputs, outputs, error);
            if (found)
                s_text (text, found);
            else
                rc = -1;
        }
        else
            rc = -1;
    }
    if (rc == 0)
        lh_pack_strn (pack, (const char *) zchunk_data (text), zchunk_size (text));
    zchunk_destroy (&text);
    return rc;
}


//  --------------------------------------------------------------------------
//  Pack node index's input from the inputs and the outputs it needs

int
lh_wfdef_node_input (lh_wfdef_t *self, size_t index, const msgpack_object *inputs,
                     const msgpack_object *const *outputs, lh_pack_t *pack,
                     lh_wferror_t *error)
{
    assert (self && index < self->count);
    const msgpack_object *input = self->nodes [index].input;
    if (!input) {
        lh_pack_map (pack, 0);
        return 0;
    }
    return s_build (self, input, inputs, outputs, pack, error);
}


//  --------------------------------------------------------------------------
//  YAML: a plain scalar's value by the 1.2 core schema

static void
s_yaml_scalar (lh_pack_t *pack, const char *text, size_t size, bool plain)
{
    if (!plain) {
        lh_pack_strn (pack, text, size);
        return;
    }
    if (size == 0 || (size == 1 && *text == '~')
    ||  (size == 4 && (memcmp (text, "null", 4) == 0 || memcmp (text, "Null", 4) == 0
                    || memcmp (text, "NULL", 4) == 0))) {
        lh_pack_nil (pack);
        return;
    }
    if ((size == 4 && (memcmp (text, "true", 4) == 0 || memcmp (text, "True", 4) == 0
                    || memcmp (text, "TRUE", 4) == 0))) {
        lh_pack_bool (pack, true);
        return;
    }
    if ((size == 5 && (memcmp (text, "false", 5) == 0 || memcmp (text, "False", 5) == 0
                    || memcmp (text, "FALSE", 5) == 0))) {
        lh_pack_bool (pack, false);
        return;
    }
    char buffer [64];
    if (size < sizeof (buffer)) {
        memcpy (buffer, text, size);
        buffer [size] = 0;
        //  Integers: [-+]?[0-9]+ that fit 64 bits
        size_t at = (*buffer == '-' || *buffer == '+')? 1: 0;
        size_t digits = 0;
        while (isdigit ((unsigned char) buffer [at + digits]))
            digits++;
        if (digits > 0 && at + digits == size) {
            errno = 0;
            char *end;
            if (*buffer == '-') {
                long long value = strtoll (buffer, &end, 10);
                if (errno == 0 && *end == 0) {
                    lh_pack_int (pack, value);
                    return;
                }
            }
            else {
                unsigned long long value = strtoull (buffer + at, &end, 10);
                if (errno == 0 && *end == 0) {
                    lh_pack_uint (pack, value);
                    return;
                }
            }
        }
        //  Floats: [-+]?(.[0-9]+|[0-9]+(.[0-9]*)?)([eE][-+]?[0-9]+)?
        const char *scan = buffer + at;
        size_t whole = 0, fraction = 0;
        while (isdigit ((unsigned char) *scan))
            scan++, whole++;
        if (*scan == '.') {
            scan++;
            while (isdigit ((unsigned char) *scan))
                scan++, fraction++;
        }
        bool number = (whole > 0 || fraction > 0) && (scan [-1] != '.' || whole > 0);
        if (number && (*scan == 'e' || *scan == 'E')) {
            scan++;
            if (*scan == '-' || *scan == '+')
                scan++;
            size_t exponent = 0;
            while (isdigit ((unsigned char) *scan))
                scan++, exponent++;
            number = exponent > 0;
        }
        if (number && *scan == 0) {
            double value = strtod (buffer, NULL);
            if (isfinite (value)) {
                lh_pack_double (pack, value);
                return;
            }
        }
    }
    lh_pack_strn (pack, text, size);
}


//  --------------------------------------------------------------------------
//  YAML text into msgpack, event by event. Returns 0, or -1 with error.

static int
s_yaml_parse (const char *text, size_t size, lh_pack_t *pack, lh_wferror_t *error)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize (&parser))
        return s_error (error, "bad_definition", "cannot start the YAML parser");
    yaml_parser_set_input_string (&parser, (const unsigned char *) text, size);
    //  Per open container: is it a map, and (for a map) is the next
    //  scalar a key; the keys seen, to refuse a repeated one
    bool is_map [LH_WF_DEPTH_MAX + 1];
    bool want_key [LH_WF_DEPTH_MAX + 1];
    zhashx_t *keys [LH_WF_DEPTH_MAX + 1];
    int depth = 0, documents = 0, rc = 0;
    bool done = false;
    while (!done && rc == 0) {
        yaml_event_t event;
        if (!yaml_parser_parse (&parser, &event)) {
            rc = s_error (error, "bad_definition", "YAML line %zu, column %zu: %s",
                          parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                          parser.problem? parser.problem: "malformed");
            break;
        }
        bool is_key = depth > 0 && is_map [depth] && want_key [depth];
        switch (event.type) {
            case YAML_STREAM_END_EVENT:
                done = true;
                break;
            case YAML_DOCUMENT_START_EVENT:
                if (++documents > 1)
                    rc = s_error (error, "bad_definition", "YAML: one document only");
                break;
            case YAML_ALIAS_EVENT:
                rc = s_error (error, "bad_definition", "YAML line %zu: aliases (*name) are not "
                              "accepted in a definition", event.start_mark.line + 1);
                break;
            case YAML_SCALAR_EVENT:
            case YAML_SEQUENCE_START_EVENT:
            case YAML_MAPPING_START_EVENT: {
                const char *tag = event.type == YAML_SCALAR_EVENT? (const char *) event.data.scalar.tag:
                                  event.type == YAML_SEQUENCE_START_EVENT?
                                  (const char *) event.data.sequence_start.tag:
                                  (const char *) event.data.mapping_start.tag;
                bool string_tag = tag && streq (tag, YAML_STR_TAG);
                if (tag && !string_tag && !streq (tag, YAML_SEQ_TAG) && !streq (tag, YAML_MAP_TAG)) {
                    rc = s_error (error, "bad_definition", "YAML line %zu: tag %s is not accepted "
                                  "(only !!str)", event.start_mark.line + 1, tag);
                    break;
                }
                if (is_key && event.type != YAML_SCALAR_EVENT) {
                    rc = s_error (error, "bad_definition", "YAML line %zu: a map key must be "
                                  "text", event.start_mark.line + 1);
                    break;
                }
                if (event.type == YAML_SCALAR_EVENT) {
                    const char *value = (const char *) event.data.scalar.value;
                    size_t value_size = event.data.scalar.length;
                    if (is_key) {
                        char *key = (char *) malloc (value_size + 1);
                        assert (key);
                        memcpy (key, value, value_size);
                        key [value_size] = 0;
                        if (strlen (key) != value_size || zhashx_insert (keys [depth], key, key) != 0) {
                            rc = s_error (error, "bad_definition", "YAML line %zu: key '%.64s' "
                                          "appears twice in one map", event.start_mark.line + 1, key);
                            free (key);
                            break;
                        }
                        lh_pack_strn (pack, value, value_size);
                    }
                    else
                        s_yaml_scalar (pack, value, value_size,
                                       event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !string_tag);
                }
                else {
                    if (depth >= LH_WF_DEPTH_MAX) {
                        rc = s_error (error, "bad_definition", "YAML: nested deeper than %d",
                                      LH_WF_DEPTH_MAX);
                        break;
                    }
                    depth++;
                    is_map [depth] = event.type == YAML_MAPPING_START_EVENT;
                    want_key [depth] = true;
                    keys [depth] = NULL;
                    if (is_map [depth]) {
                        keys [depth] = zhashx_new ();
                        zhashx_set_destructor (keys [depth], (zhashx_destructor_fn *) zstr_free);
                        zhashx_set_duplicator (keys [depth], NULL);
                        lh_pack_open_map (pack);
                    }
                    else
                        lh_pack_open_array (pack);
                    //  The parent map's next scalar is a key again only once
                    //  this container closes: handled at its end event
                    yaml_event_delete (&event);
                    continue;
                }
                break;
            }
            case YAML_SEQUENCE_END_EVENT:
            case YAML_MAPPING_END_EVENT:
                zhashx_destroy (&keys [depth]);
                lh_pack_close (pack);
                depth--;
                break;
            default:
                break;
        }
        //  A value was written into the current container: in a map, keys
        //  and values alternate
        if (rc == 0 && depth > 0 && is_map [depth]
        &&  (event.type == YAML_SCALAR_EVENT || event.type == YAML_SEQUENCE_END_EVENT
          || event.type == YAML_MAPPING_END_EVENT))
            want_key [depth] = !want_key [depth];
        yaml_event_delete (&event);
    }
    while (depth > 0)
        zhashx_destroy (&keys [depth--]);
    yaml_parser_delete (&parser);
    if (rc == 0 && documents == 0)
        rc = s_error (error, "bad_definition", "the definition is empty");
    return rc;
}


//  --------------------------------------------------------------------------
//  Parse definition text, YAML or JSON, into msgpack

int
lh_wfdef_parse_text (const char *text, size_t size, lh_pack_t *pack, lh_wferror_t *error)
{
    assert (text || size == 0);
    size_t at = 0;
    while (at < size && isspace ((unsigned char) text [at]))
        at++;
    char *json_reason = NULL;
    if (at < size && text [at] == '{') {
        zframe_t *frame = lh_json_text_to_frame (text, size, NULL, &json_reason);
        if (frame) {
            lh_pack_raw (pack, zframe_data (frame), zframe_size (frame));
            zframe_destroy (&frame);
            return 0;
        }
        //  {"... or {} is JSON, and its error is the one to report; an
        //  unquoted key is a flow-style YAML map ({name: x, ...})
        size_t next = at + 1;
        while (next < size && isspace ((unsigned char) text [next]))
            next++;
        if (next >= size || text [next] == '"' || text [next] == '}') {
            s_error (error, "bad_definition", "definition JSON %s", json_reason? json_reason: "malformed");
            free (json_reason);
            return -1;
        }
    }
    if (memchr (text, 0, size)) {
        free (json_reason);
        return s_error (error, "bad_definition", "definition text holds a NUL byte");
    }
    lh_pack_t *yaml = lh_pack_new ();
    int rc = s_yaml_parse (text, size, yaml, error);
    if (rc && json_reason)
        s_error (error, "bad_definition", "definition JSON %s", json_reason);
    free (json_reason);
    if (rc == 0) {
        size_t yaml_size;
        const void *data = lh_pack_data (yaml, &yaml_size);
        lh_pack_raw (pack, data, yaml_size);
    }
    lh_pack_destroy (&yaml);
    return rc;
}


//  --------------------------------------------------------------------------
//  Self test: YAML and JSON text, every refusal at load, inputs and
//  templates

//  Load a definition from text (YAML or JSON); NULL with error set
static lh_wfdef_t *
s_test_load (const char *text, const lh_wfcheck_t *check, lh_wferror_t *error)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_wfdef_t *def = NULL;
    if (lh_wfdef_parse_text (text, strlen (text), pack, error) == 0) {
        size_t size;
        const void *data = lh_pack_data (pack, &size);
        msgpack_zone zone;
        msgpack_zone_init (&zone, 1024);
        msgpack_object object;
        assert (lh_msgpack_unpack (data, size, &lh_limits_default, &zone, &object) == 0);
        def = lh_wfdef_load (&object, check, error);
        msgpack_zone_destroy (&zone);
    }
    lh_pack_destroy (&pack);
    return def;
}

//  YAML or JSON text as compact JSON (caller frees), or NULL
static char *
s_test_json (const char *text)
{
    lh_pack_t *pack = lh_pack_new ();
    lh_wferror_t error;
    char *json = NULL;
    if (lh_wfdef_parse_text (text, strlen (text), pack, &error) == 0) {
        size_t size;
        const void *data = lh_pack_data (pack, &size);
        json = lh_json_text_from_msgpack (data, size, NULL, NULL);
    }
    lh_pack_destroy (&pack);
    return json;
}

//  A node's input built from inputs and outputs given as JSON text, as
//  JSON text (caller frees); NULL with error set
static char *
s_test_input (lh_wfdef_t *def, const char *node, const char *inputs_json,
              const char **outputs_json, lh_wferror_t *error)
{
    zframe_t *inputs_frame = lh_json_text_to_frame (inputs_json, strlen (inputs_json), NULL, NULL);
    assert (inputs_frame);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_object inputs;
    assert (lh_msgpack_unpack (zframe_data (inputs_frame), zframe_size (inputs_frame),
                               &lh_limits_default, &zone, &inputs) == 0);
    size_t count = lh_wfdef_count (def);
    zframe_t **frames = (zframe_t **) calloc (count, sizeof (zframe_t *));
    msgpack_object *objects = (msgpack_object *) calloc (count, sizeof (msgpack_object));
    const msgpack_object **outputs = (const msgpack_object **) calloc (count, sizeof (msgpack_object *));
    for (size_t index = 0; index < count; index++)
        if (outputs_json [index]) {
            frames [index] = lh_json_text_to_frame (outputs_json [index], strlen (outputs_json [index]),
                                                    NULL, NULL);
            assert (frames [index]);
            assert (lh_msgpack_unpack (zframe_data (frames [index]), zframe_size (frames [index]),
                                       &lh_limits_default, &zone, &objects [index]) == 0);
            outputs [index] = &objects [index];
        }
    lh_pack_t *pack = lh_pack_new ();
    char *json = NULL;
    int index = lh_wfdef_node_index (def, node);
    assert (index >= 0);
    if (lh_wfdef_node_input (def, (size_t) index, &inputs, outputs, pack, error) == 0) {
        size_t size;
        const void *data = lh_pack_data (pack, &size);
        json = lh_json_text_from_msgpack (data, size, NULL, NULL);
        assert (json);
    }
    lh_pack_destroy (&pack);
    for (size_t index = 0; index < count; index++)
        zframe_destroy (&frames [index]);
    free (frames);
    free (objects);
    free (outputs);
    zframe_destroy (&inputs_frame);
    msgpack_zone_destroy (&zone);
    return json;
}

void
lh_wfdef_test (bool verbose)
{
    printf (" * lh_wfdef: ");

    //  YAML: the core schema (on stays a key, yes a string), quoting, and
    //  the same structure as JSON
    const char *yaml =
        "# a workflow\n"
        "name: nightly\n"
        "on: catalog.changed\n"
        "nodes:\n"
        "  count:\n"
        "    call: queryd.sql\n"
        "    input: {sql: \"SELECT 1\", limit: 10, ratio: 0.5, big: -12, on: yes, none: ~, t: true}\n"
        "    needs: [load]\n"
        "    retries: 2\n"
        "  load:\n"
        "    call: echo.echo\n"
        "    input:\n"
        "      text: |\n"
        "        two\n"
        "        lines\n"
        "      quoted: '007'\n"
        "      number: 007\n"
        "      tagged: !!str 12\n";
    char *json = s_test_json (yaml);
    assert (json);
    if (verbose)
        printf ("\n    %s\n    ", json);
    assert (strstr (json, "\"on\":\"catalog.changed\""));
    assert (strstr (json, "\"input\":{\"sql\":\"SELECT 1\",\"limit\":10,\"ratio\":0.5,\"big\":-12,"
                          "\"on\":\"yes\",\"none\":null,\"t\":true}"));
    assert (strstr (json, "\"needs\":[\"load\"],\"retries\":2"));
    assert (strstr (json, "\"text\":\"two\\nlines\\n\",\"quoted\":\"007\",\"number\":7,\"tagged\":\"12\""));
    zstr_free (&json);
    json = s_test_json ("  {\"name\": \"x\", \"nodes\": {}}");
    assert (json && streq (json, "{\"name\":\"x\",\"nodes\":{}}"));
    zstr_free (&json);
    json = s_test_json ("{name: x, nodes: {a: {call: echo.echo}}}");
    assert (json && streq (json, "{\"name\":\"x\",\"nodes\":{\"a\":{\"call\":\"echo.echo\"}}}"));
    zstr_free (&json);
    const char *bad_texts [] = {
        "a: &x 1\nb: *x\n",                             //  aliases
        "a: 1\n---\nb: 2\n",                            //  two documents
        "a: 1\na: 2\n",                                 //  a repeated key
        "a: !!binary aGk=\n",                           //  a custom tag
        "a: [1, 2\n",                                   //  malformed
        "",                                             //  empty
        "{\"a\": 1, \"a\": 2}",                         //  JSON repeated key
        "{\"a\": }",                                    //  bad JSON
        "? [1, 2]\n: x\n",                              //  a key that is not text
    };
    for (size_t index = 0; index < sizeof (bad_texts) / sizeof (bad_texts [0]); index++) {
        json = s_test_json (bad_texts [index]);
        if (json)
            fprintf (stderr, "accepted %s as %s\n", bad_texts [index], json);
        assert (!json);
    }
    //  Deep nesting is refused, not crashed on
    char deep [200];
    memset (deep, '[', 100);
    deep [100] = 0;
    assert (!s_test_json (deep));

    //  Refusals at load: the kind, and the name in the reason
    zhashx_t *services = zhashx_new ();
    zhashx_insert (services, "echo", "echo,sleep,fail");
    zhashx_insert (services, "queryd", "");
    lh_wfcheck_t check = { .services = services, .idempotent = "queryd.sql,echo.*",
                           .nodes_max = 8, .retries_max = 3, .timeout_max_ms = 60000 };
    struct {
        const char *text;               //  the definition
        const char *kind;               //  expected kind
        const char *reason;             //  expected in the reason
    } refusals [] = {
        { "[1]", "bad_definition", "must be a map" },
        { "{\"nodes\": {\"a\": {\"call\": \"echo.echo\"}}}", "bad_definition", "needs a name" },
        { "{\"name\": \"bad name\", \"nodes\": {}}", "bad_definition", "name must be" },
        { "{\"name\": \"w\"}", "bad_definition", "nodes must be a map of 1..8" },
        { "{\"name\": \"w\", \"nodes\": {}}", "bad_definition", "nodes must be a map" },
        { "{\"name\": \"w\", \"nodez\": {}}", "bad_definition", "unknown key 'nodez'" },
        { "{\"name\": \"w\", \"on\": \"\", \"nodes\": {\"a\": {\"call\": \"echo.echo\"}}}",
          "bad_definition", "on must be" },
        { "{\"name\": \"w\", \"on\": \"workflow.run\", \"nodes\": {\"a\": {\"call\": \"echo.echo\"}}}",
          "bad_definition", "runner's own events" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": 1}}", "bad_definition", "node 'a' must be a map" },
        { "{\"name\": \"w\", \"nodes\": {\"a b\": {\"call\": \"echo.echo\"}}}", "bad_definition", "node ids" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"input\": {}}}}", "bad_definition", "node 'a' has no call" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo\"}}}", "bad_definition", "\"service.op\"" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.\"}}}", "bad_definition", "\"service.op\"" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", \"need\": []}}}",
          "bad_definition", "unknown key 'need'" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", \"needs\": \"b\"}}}",
          "bad_definition", "needs must be a list" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", \"timeout_ms\": 0}}}",
          "bad_definition", "timeout_ms must be" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", \"timeout_ms\": 60001}}}",
          "bad_definition", "timeout_ms must be" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", \"retries\": 4}}}",
          "bad_definition", "retries must be" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", \"retries\": -1}}}",
          "bad_definition", "retries must be" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", \"needs\": [\"ghost\"]}}}",
          "missing_dependency", "node 'a' needs 'ghost'" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", \"needs\": [\"a\"]}}}",
          "cycle", "a -> a" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", \"needs\": [\"c\"]}, "
          "\"b\": {\"call\": \"echo.echo\", \"needs\": [\"a\"]}, \"c\": {\"call\": \"echo.echo\", "
          "\"needs\": [\"b\"]}, \"d\": {\"call\": \"echo.echo\"}}}", "cycle", "a -> c -> b -> a" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"nosuchd.get\"}}}",
          "unknown_service", "no service 'nosuchd'" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.nope\"}}}",
          "unknown_op", "echo.nope" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", \"input\": "
          "{\"x\": \"${nodes.ghost.output}\"}}}}", "unknown_node", "names node 'ghost'" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\"}, \"b\": {\"call\": "
          "\"echo.echo\", \"input\": {\"x\": [\"${nodes.a.output.n}\"]}}}}", "not_needed",
          "names node 'a', which 'b' does not need" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", \"input\": "
          "\"${nodes.a.output}\"}}}", "not_needed", "names node 'a', which 'a' does not need" },
        { "{\"name\": \"w\", \"inputs\": [\"csv\"], \"nodes\": {\"a\": {\"call\": \"echo.echo\", "
          "\"input\": \"x ${inputs.cvs} y\"}}}", "unknown_input", "names input 'cvs'" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", \"input\": \"${input.x}\"}}}",
          "bad_template", "must start with inputs. or nodes." },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", \"input\": \"${inputs.x\"}}}",
          "bad_template", "not closed" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", \"input\": \"${inputs..x}\"}}}",
          "bad_template", "segments" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\"}, \"b\": {\"call\": "
          "\"echo.echo\", \"needs\": [\"a\"], \"input\": \"${nodes.a.result}\"}}}", "bad_template",
          "${nodes.ID.output}" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", \"input\": \"${inputs.x y}\"}}}",
          "bad_template", "segments" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"queryd.get\", \"retries\": 1}}}",
          "not_idempotent", "queryd.get" },
        { "{\"name\": \"w\", \"on\": \"catalog.changed\", \"nodes\": {\"a\": {\"call\": \"echo.echo\", "
          "\"input\": \"${inputs.key}\"}}}", "bad_definition", "gets only inputs.event" },
        { "{\"name\": \"w\", \"inputs\": 5, \"nodes\": {\"a\": {\"call\": \"echo.echo\"}}}",
          "bad_definition", "inputs must be" },
        { "{\"name\": \"w\", \"nodes\": {\"a\": {\"call\": \"echo.echo\"}, \"b\": {\"call\": \"echo.echo\"}, "
          "\"c\": {\"call\": \"echo.echo\"}, \"d\": {\"call\": \"echo.echo\"}, \"e\": {\"call\": \"echo.echo\"}, "
          "\"f\": {\"call\": \"echo.echo\"}, \"g\": {\"call\": \"echo.echo\"}, \"h\": {\"call\": \"echo.echo\"}, "
          "\"i\": {\"call\": \"echo.echo\"}}}", "bad_definition", "1..8 nodes" },
    };
    for (size_t index = 0; index < sizeof (refusals) / sizeof (refusals [0]); index++) {
        lh_wferror_t error = { "", "" };
        lh_wfdef_t *def = s_test_load (refusals [index].text, &check, &error);
        if (verbose)
            printf ("\n    %s: %s", error.kind, error.reason);
        if (def || !streq (error.kind, refusals [index].kind)
        ||  !strstr (error.reason, refusals [index].reason)) {
            fprintf (stderr, "%s: got %s %s, wanted %s ...%s...\n", refusals [index].text,
                     def? "accepted": error.kind, error.reason, refusals [index].kind,
                     refusals [index].reason);
            assert (false);
        }
    }

    //  A good one: nodes in id order, needs, required inputs, templates
    const char *text =
        "{\"name\": \"pipeline\", \"nodes\": {"
        " \"sql\": {\"call\": \"queryd.sql\", \"needs\": [\"load\", \"load\"], \"retries\": 2, "
        "   \"input\": {\"sql\": \"SELECT count(*) FROM \\\"${inputs.dataset}\\\"\", \"limit\": \"${inputs.limit}\"}},"
        " \"load\": {\"call\": \"echo.echo\", \"timeout_ms\": 500, "
        "   \"input\": {\"name\": \"${inputs.dataset}\", \"cfg\": \"${inputs.cfg.deep.0}\"}},"
        " \"report\": {\"call\": \"echo.echo\", \"needs\": [\"sql\"], \"input\": {"
        "   \"rows\": \"${nodes.sql.output.rows.0.0}\", \"all\": \"${nodes.load.output}\","
        "   \"text\": \"${nodes.sql.output.rows.0.0} rows in ${inputs.dataset} $${literal} ${nodes.load.output.cfg}\","
        "   \"${inputs.dataset}\": 1, \"list\": [\"${inputs.limit}\", true]}}}}";
    lh_wferror_t error = { "", "" };
    lh_wfdef_t *def = s_test_load (text, &check, &error);
    if (!def)
        fprintf (stderr, "%s: %s\n", error.kind, error.reason);
    assert (def);
    assert (streq (lh_wfdef_name (def), "pipeline") && !lh_wfdef_on (def));
    assert (lh_wfdef_count (def) == 3);
    assert (streq (lh_wfdef_node_id (def, 0), "load") && streq (lh_wfdef_node_id (def, 2), "sql"));
    assert (streq (lh_wfdef_node_svc (def, 2), "queryd") && streq (lh_wfdef_node_op (def, 2), "sql"));
    size_t count;
    const size_t *needs = lh_wfdef_node_needs (def, 2, &count);
    assert (count == 1 && needs [0] == 0);
    assert (lh_wfdef_node_timeout (def, 0) == 500 && lh_wfdef_node_retries (def, 2) == 2);
    assert (streq (lh_wfdef_required (def), "dataset,cfg,limit"));
    //  Inputs: every required one, or refused naming it
    lh_pack_t *pack = lh_pack_new ();
    zframe_t *given = lh_json_text_to_frame ("{\"dataset\": \"w\"}", 16, NULL, NULL);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 256);
    msgpack_object object;
    assert (lh_msgpack_unpack (zframe_data (given), zframe_size (given), &lh_limits_default,
                               &zone, &object) == 0);
    assert (lh_wfdef_inputs (def, &object, pack, &error) == -1);
    assert (streq (error.kind, "missing_input") && strstr (error.reason, "inputs.cfg"));
    msgpack_zone_destroy (&zone);
    zframe_destroy (&given);
    lh_pack_destroy (&pack);

    const char *outputs [3] = { "{\"cfg\": {\"a\": [1, \"x\"]}}", NULL,
                                "{\"rows\": [[42]], \"columns\": []}" };
    const char *inputs = "{\"dataset\": \"workers\", \"limit\": 5, \"cfg\": {\"deep\": [2.5]}}";
    json = s_test_input (def, "sql", inputs, outputs, &error);
    assert (json && streq (json, "{\"sql\":\"SELECT count(*) FROM \\\"workers\\\"\",\"limit\":5}"));
    zstr_free (&json);
    json = s_test_input (def, "load", inputs, outputs, &error);
    assert (json && streq (json, "{\"name\":\"workers\",\"cfg\":2.5}"));
    zstr_free (&json);
    json = s_test_input (def, "report", inputs, outputs, &error);
    if (verbose)
        printf ("\n    %s", json);
    assert (json && streq (json, "{\"rows\":42,\"all\":{\"cfg\":{\"a\":[1,\"x\"]}},"
                                 "\"text\":\"42 rows in workers ${literal} {\\\"a\\\":[1,\\\"x\\\"]}\","
                                 "\"${inputs.dataset}\":1,\"list\":[5,true]}"));
    zstr_free (&json);
    //  A path with no value fails the node, naming the template
    outputs [2] = "{\"rows\": []}";
    json = s_test_input (def, "report", inputs, outputs, &error);
    assert (!json && streq (error.kind, "no_value") && strstr (error.reason, "${nodes.sql.output.rows.0.0}"));
    lh_wfdef_destroy (&def);

    //  Declared inputs with defaults; an event workflow reads inputs.event
    def = s_test_load ("{\"name\": \"ev\", \"on\": \"catalog.\", \"inputs\": {\"prefix\": \"p-\"}, "
                       "\"nodes\": {\"a\": {\"call\": \"echo.echo\", \"input\": "
                       "\"${inputs.prefix}${inputs.event.body.name}\"}}}", &check, &error);
    assert (def && streq (lh_wfdef_on (def), "catalog.") && streq (lh_wfdef_required (def), "event"));
    const char *none [1] = { NULL };
    json = s_test_input (def, "a", "{\"prefix\": \"p-\", \"event\": {\"body\": {\"name\": \"w\"}}}", none, &error);
    assert (json && streq (json, "\"p-w\""));
    zstr_free (&json);
    pack = lh_pack_new ();
    assert (lh_wfdef_inputs (def, NULL, pack, &error) == -1 && strstr (error.reason, "inputs.event"));
    lh_pack_destroy (&pack);
    pack = lh_pack_new ();
    given = lh_json_text_to_frame ("{\"event\": 1}", 12, NULL, NULL);
    msgpack_zone_init (&zone, 256);
    assert (lh_msgpack_unpack (zframe_data (given), zframe_size (given), &lh_limits_default,
                               &zone, &object) == 0);
    assert (lh_wfdef_inputs (def, &object, pack, &error) == 0);
    msgpack_zone_destroy (&zone);
    zframe_destroy (&given);
    size_t size;
    const void *data = lh_pack_data (pack, &size);
    json = lh_json_text_from_msgpack (data, size, NULL, NULL);
    assert (streq (json, "{\"prefix\":\"p-\",\"event\":1}"));
    zstr_free (&json);
    lh_pack_destroy (&pack);
    lh_wfdef_destroy (&def);

    //  A stored definition loads without the service check
    check.services = NULL;
    def = s_test_load ("{\"name\": \"later\", \"nodes\": {\"a\": {\"call\": \"notyet.op\"}}}", &check, &error);
    assert (def);
    lh_wfdef_destroy (&def);

    assert (lh_wfdef_listed ("a.b, c.*", "c", "anything") && lh_wfdef_listed ("a.b,c.*", "a", "b"));
    assert (!lh_wfdef_listed ("a.b,c.*", "a", "c") && !lh_wfdef_listed ("", "a", "b"));
    assert (lh_wfdef_listed ("*", "x", "y") && !lh_wfdef_listed ("ab.c", "a", "b.c"));
    zhashx_destroy (&services);
    printf ("OK\n");
}
