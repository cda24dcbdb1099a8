/*  =========================================================================
    lh_http_auth - the gateway's bearer tokens and client address allow-list

    See lh_http_auth.h. The token set is replaced as a whole under a
    read-write lock: HTTP threads take the read side for each check, a
    reload takes the write side only to swap the arrays.
    =========================================================================
*/

#include "lh_http_auth.h"
#include <sodium.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <fcntl.h>

#define S_HASH_SIZE     crypto_hash_sha256_BYTES
#define S_TOKEN_MIN     16              //  shortest token accepted, bytes
#define S_TOKEN_MAX     4096            //  longest token accepted, bytes
#define S_TOKENS_MAX    64              //  most tokens at once
#define S_FILE_MAX      (64 * 1024)     //  largest token file read

#define S_NAME_MAX      64              //  longest token name

//  The roles a token may carry: the first is every token's default
static const char *s_roles [] = { "client", "admin", "tap" };
#define S_ROLE_COUNT    (sizeof (s_roles) / sizeof (s_roles [0]))

//  One accepted token, as its hash, with its role and name
typedef struct {
    uint8_t hash [S_HASH_SIZE];         //  SHA-256 of the token
    uint8_t role;                       //  index in s_roles
    char name [S_NAME_MAX + 1];         //  name= in the token file, or a default
} s_token_t;

//  One allow-list entry, IPv4 held as v4-mapped IPv6
typedef struct {
    uint8_t address [16];               //  network address
    unsigned prefix;                    //  prefix length, bits (0..128)
} s_cidr_t;

//  What we last saw of the token file, to notice a change
typedef struct {
    bool exists;                        //  stat succeeded
    dev_t dev;                          //  device
    ino_t ino;                          //  inode
    off_t size;                         //  size, bytes
    struct timespec mtime;              //  modification time
    struct timespec ctime;              //  status change time (chmod)
} s_file_state_t;

//  Structure of our class

struct _lh_http_auth_t {
    char *token_file;                   //  token file path, or NULL
    pthread_rwlock_t lock;              //  guards tokens and count
    s_token_t *tokens;                  //  accepted tokens
    size_t count;                       //  how many
    s_file_state_t seen;                //  token file when last read
    s_cidr_t *cidrs;                    //  allow-list (immutable)
    size_t cidr_count;                  //  entries; 0 = any address
};


//  --------------------------------------------------------------------------
//  Return a new error sentence (printf style)

static char *
s_error (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *text = NULL;
    if (vasprintf (&text, format, args) < 0)
        text = NULL;
    va_end (args);
    return text? text: strdup ("out of memory");
}


//  --------------------------------------------------------------------------
//  Stat the token file into state (exists false if it cannot be stat'ed)

static void
s_file_state (const char *path, s_file_state_t *state)
{
    memset (state, 0, sizeof (*state));
    struct stat st;
    if (path && stat (path, &st) == 0) {
        state->exists = true;
        state->dev = st.st_dev;
        state->ino = st.st_ino;
        state->size = st.st_size;
        state->mtime = st.st_mtim;
        state->ctime = st.st_ctim;
    }
}


//  --------------------------------------------------------------------------
//  Add one token (trimmed of blanks) to the array, with role (index in
//  s_roles) and name (NULL: "token-N"). Returns 0, or -1 with *error_p
//  set. where names the source for the message.

static int
s_token_add (s_token_t *tokens, size_t *count, const char *text, size_t size,
             uint8_t role, const char *name, const char *where, char **error_p)
{
    while (size && isspace ((unsigned char) *text)) {
        text++;
        size--;
    }
    while (size && isspace ((unsigned char) text [size - 1]))
        size--;
    if (size < S_TOKEN_MIN || size > S_TOKEN_MAX) {
        *error_p = s_error ("%s: a token must be %d to %d characters (this one has %zu)",
                            where, S_TOKEN_MIN, S_TOKEN_MAX, size);
        return -1;
    }
    for (size_t index = 0; index < size; index++)
        if (text [index] < 0x21 || text [index] > 0x7e) {
            *error_p = s_error ("%s: a token must be printable ASCII without blanks", where);
            return -1;
        }
    if (*count >= S_TOKENS_MAX) {
        *error_p = s_error ("%s: more than %d tokens", where, S_TOKENS_MAX);
        return -1;
    }
    s_token_t *token = &tokens [*count];
    crypto_hash_sha256 (token->hash, (const uint8_t *) text, size);
    token->role = role;
    if (name)
        snprintf (token->name, sizeof (token->name), "%s", name);
    else
    if (*count < 2)
        snprintf (token->name, sizeof (token->name), "%s", *count? "secondary": "primary");
    else
        snprintf (token->name, sizeof (token->name), "token-%zu", *count + 1);
    (*count)++;
    return 0;
}


//  --------------------------------------------------------------------------
//  Parse one token file line, "TOKEN [role=ROLE] [name=NAME]", and add the
//  token. Returns 0, or -1 with *error_p set.

static int
s_token_line (s_token_t *tokens, size_t *count, const char *line, size_t length,
              const char *where, char **error_p)
{
    size_t token_size = 0;
    while (token_size < length && !isspace ((unsigned char) line [token_size]))
        token_size++;
    uint8_t role = 0;
    char name [S_NAME_MAX + 1] = "";
    const char *field = line + token_size;
    const char *end = line + length;
    while (field < end) {
        while (field < end && isspace ((unsigned char) *field))
            field++;
        if (field == end)
            break;
        size_t size = 0;
        while (field + size < end && !isspace ((unsigned char) field [size]))
            size++;
        if (size > 5 && memcmp (field, "role=", 5) == 0) {
            size_t index;
            for (index = 0; index < S_ROLE_COUNT; index++)
                if (size - 5 == strlen (s_roles [index])
                &&  memcmp (field + 5, s_roles [index], size - 5) == 0)
                    break;
            if (index == S_ROLE_COUNT) {
                *error_p = s_error ("%s: a token's role is client, admin or tap, not '%.*s'",
                                    where, (int) (size - 5 > 32? 32: size - 5), field + 5);
                return -1;
            }
            role = (uint8_t) index;
        }
        else
        if (size > 5 && memcmp (field, "name=", 5) == 0) {
            bool valid = size - 5 <= S_NAME_MAX;
            for (size_t index = 5; valid && index < size; index++)
                valid = isalnum ((unsigned char) field [index])
                     || strchr ("_.-", field [index]);
            if (!valid) {
                *error_p = s_error ("%s: a token's name is 1 to %d of [A-Za-z0-9_.-]",
                                    where, S_NAME_MAX);
                return -1;
            }
            snprintf (name, sizeof (name), "%.*s", (int) (size - 5), field + 5);
        }
        else {
            *error_p = s_error ("%s: after the token, only role=ROLE and name=NAME "
                                "(a token has no blanks)", where);
            return -1;
        }
        field += size;
    }
    return s_token_add (tokens, count, line, token_size, role, *name? name: NULL,
                        where, error_p);
}


//  --------------------------------------------------------------------------
//  Read the token file into the array. Returns 0, or -1 with *error_p set.

static int
s_tokens_from_file (const char *path, s_token_t *tokens, size_t *count, char **error_p)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        *error_p = s_error ("gateway/token_file '%s': %s", path, strerror (errno));
        return -1;
    }
    struct stat st;
    if (fstat (fd, &st) || !S_ISREG (st.st_mode)) {
        close (fd);
        *error_p = s_error ("gateway/token_file '%s' is not a regular file", path);
        return -1;
    }
    if (st.st_mode & 077) {
        close (fd);
        *error_p = s_error ("gateway/token_file '%s' has mode %04o: group and others must "
                            "have no access (chmod 600 '%s')", path,
                            (unsigned) (st.st_mode & 07777), path);
        return -1;
    }
    if (st.st_size > S_FILE_MAX) {
        close (fd);
        *error_p = s_error ("gateway/token_file '%s' is larger than %d bytes", path, S_FILE_MAX);
        return -1;
    }
    char *text = malloc (S_FILE_MAX + 1);
    assert (text);
    ssize_t size = read (fd, text, S_FILE_MAX);
    close (fd);
    if (size < 0) {
        free (text);
        *error_p = s_error ("gateway/token_file '%s': %s", path, strerror (errno));
        return -1;
    }
    text [size] = 0;
    int rc = 0;
    char *line = text;
    int number = 0;
    while (line && *line && rc == 0) {
        number++;
        char *next = strchr (line, '\n');
        size_t length = next? (size_t) (next - line): strlen (line);
        const char *start = line;
        while (length && isspace ((unsigned char) *start)) {
            start++;
            length--;
        }
        if (length && *start != '#') {
            char where [256];
            snprintf (where, sizeof (where), "%s:%d", path, number);
            rc = s_token_line (tokens, count, start, length, where, error_p);
        }
        line = next? next + 1: NULL;
    }
    sodium_memzero (text, S_FILE_MAX + 1);
    free (text);
    return rc;
}


//  --------------------------------------------------------------------------
//  Read every token source into a new array. Returns 0, or -1 with
//  *error_p set.

static int
s_tokens_load (lh_http_auth_t *self, s_token_t **tokens_p, size_t *count_p, char **error_p)
{
    s_token_t *tokens = calloc (S_TOKENS_MAX, sizeof (s_token_t));
    assert (tokens);
    size_t count = 0;
    int rc = 0;
    const char *primary = getenv ("LAKEHOUSE_TOKEN");
    if (primary && *primary)
        rc = s_token_add (tokens, &count, primary, strlen (primary), 0, NULL,
                          "LAKEHOUSE_TOKEN", error_p);
    const char *list = getenv ("LAKEHOUSE_TOKENS");
    while (rc == 0 && list && *list) {
        size_t size = strcspn (list, ",");
        bool blank = true;
        for (size_t index = 0; index < size; index++)
            if (!isspace ((unsigned char) list [index]))
                blank = false;
        if (!blank)
            rc = s_token_add (tokens, &count, list, size, 0, NULL, "LAKEHOUSE_TOKENS", error_p);
        list += size + (list [size] == ',');
    }
    if (rc == 0 && self->token_file)
        rc = s_tokens_from_file (self->token_file, tokens, &count, error_p);
    if (rc) {
        free (tokens);
        return -1;
    }
    *tokens_p = tokens;
    *count_p = count;
    return 0;
}


//  --------------------------------------------------------------------------
//  Parse one CIDR ("10.0.0.0/8", "::1", "192.168.1.7"). Returns 0 or -1.

static int
s_cidr_parse (const char *text, size_t size, s_cidr_t *cidr)
{
    char buffer [INET6_ADDRSTRLEN + 8];
    while (size && isspace ((unsigned char) *text)) {
        text++;
        size--;
    }
    while (size && isspace ((unsigned char) text [size - 1]))
        size--;
    if (size == 0 || size >= sizeof (buffer))
        return -1;
    memcpy (buffer, text, size);
    buffer [size] = 0;
    long prefix = -1;
    char *slash = strchr (buffer, '/');
    if (slash) {
        *slash = 0;
        char *end = NULL;
        prefix = strtol (slash + 1, &end, 10);
        if (slash [1] == 0 || *end || prefix < 0)
            return -1;
    }
    memset (cidr, 0, sizeof (*cidr));
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton (AF_INET, buffer, &v4) == 1) {
        if (prefix > 32)
            return -1;
        cidr->address [10] = 0xff;
        cidr->address [11] = 0xff;
        memcpy (cidr->address + 12, &v4, 4);
        cidr->prefix = 96 + (prefix < 0? 32: prefix);
    }
    else
    if (inet_pton (AF_INET6, buffer, &v6) == 1) {
        if (prefix > 128)
            return -1;
        memcpy (cidr->address, &v6, 16);
        cidr->prefix = prefix < 0? 128: prefix;
    }
    else
        return -1;
    return 0;
}


//  --------------------------------------------------------------------------
//  The 16-byte (v4-mapped) form of a socket address. Returns 0 or -1.

static int
s_address_bytes (const struct sockaddr *address, uint8_t *bytes)
{
    memset (bytes, 0, 16);
    if (!address)
        return -1;
    if (address->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *) address;
        bytes [10] = 0xff;
        bytes [11] = 0xff;
        memcpy (bytes + 12, &in->sin_addr, 4);
        return 0;
    }
    if (address->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) address;
        memcpy (bytes, &in6->sin6_addr, 16);
        return 0;
    }
    return -1;
}


//  --------------------------------------------------------------------------
//  Does the 16-byte address fall inside the CIDR?

static bool
s_cidr_contains (const s_cidr_t *cidr, const uint8_t *bytes)
{
    unsigned bits = cidr->prefix;
    size_t whole = bits / 8;
    if (memcmp (cidr->address, bytes, whole))
        return false;
    unsigned rest = bits % 8;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t) (0xff << (8 - rest));
    return (cidr->address [whole] & mask) == (bytes [whole] & mask);
}


//  --------------------------------------------------------------------------
//  Create from a token file path and an allow-list

lh_http_auth_t *
lh_http_auth_new (const char *token_file, const char *allow, char **error_p)
{
    assert (error_p);
    *error_p = NULL;
    if (sodium_init () < 0) {
        *error_p = s_error ("libsodium could not be initialised");
        return NULL;
    }
    lh_http_auth_t *self = (lh_http_auth_t *) zmalloc (sizeof (lh_http_auth_t));
    assert (self);
    pthread_rwlock_init (&self->lock, NULL);
    if (token_file && *token_file)
        self->token_file = strdup (token_file);

    //  Allow-list
    size_t entries = 0;
    for (const char *scan = allow; scan && *scan; scan++)
        entries += *scan == ',';
    if (allow && *allow) {
        self->cidrs = calloc (entries + 1, sizeof (s_cidr_t));
        assert (self->cidrs);
        const char *list = allow;
        while (*list) {
            size_t size = strcspn (list, ",");
            bool blank = true;
            for (size_t index = 0; index < size; index++)
                if (!isspace ((unsigned char) list [index]))
                    blank = false;
            if (!blank) {
                if (s_cidr_parse (list, size, &self->cidrs [self->cidr_count])) {
                    *error_p = s_error ("gateway/allow: '%.*s' is not an address or CIDR "
                                        "(like 10.0.0.0/8 or ::1/128)", (int) size, list);
                    lh_http_auth_destroy (&self);
                    return NULL;
                }
                self->cidr_count++;
            }
            list += size + (list [size] == ',');
        }
    }
    //  Tokens
    s_file_state (self->token_file, &self->seen);
    if (s_tokens_load (self, &self->tokens, &self->count, error_p)) {
        lh_http_auth_destroy (&self);
        return NULL;
    }
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy; nulls the caller's pointer

void
lh_http_auth_destroy (lh_http_auth_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        lh_http_auth_t *self = *self_p;
        if (self->tokens)
            sodium_memzero (self->tokens, S_TOKENS_MAX * sizeof (s_token_t));
        free (self->tokens);
        free (self->cidrs);
        free (self->token_file);
        pthread_rwlock_destroy (&self->lock);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Re-read the tokens if forced or if the token file changed

int
lh_http_auth_reload (lh_http_auth_t *self, bool force, char **error_p)
{
    assert (self && error_p);
    *error_p = NULL;
    s_file_state_t state;
    s_file_state (self->token_file, &state);
    if (!force && memcmp (&state, &self->seen, sizeof (state)) == 0)
        return 0;
    self->seen = state;

    s_token_t *tokens = NULL;
    size_t count = 0;
    if (s_tokens_load (self, &tokens, &count, error_p))
        return -1;
    if (count == 0 && self->count > 0) {
        free (tokens);
        *error_p = s_error ("the new token set is empty; keeping the %zu current token%s",
                            self->count, self->count == 1? "": "s");
        return -1;
    }
    pthread_rwlock_wrlock (&self->lock);
    s_token_t *old = self->tokens;
    self->tokens = tokens;
    self->count = count;
    pthread_rwlock_unlock (&self->lock);
    sodium_memzero (old, S_TOKENS_MAX * sizeof (s_token_t));
    free (old);
    return 1;
}


//  --------------------------------------------------------------------------
//  Number of tokens currently accepted

size_t
lh_http_auth_tokens (lh_http_auth_t *self)
{
    assert (self);
    pthread_rwlock_rdlock (&self->lock);
    size_t count = self->count;
    pthread_rwlock_unlock (&self->lock);
    return count;
}


//  --------------------------------------------------------------------------
//  Describe the tokens as "primary (client), ops (admin)" (caller frees)

char *
lh_http_auth_describe (lh_http_auth_t *self)
{
    assert (self);
    pthread_rwlock_rdlock (&self->lock);
    size_t size = 1;
    for (size_t index = 0; index < self->count; index++)
        size += strlen (self->tokens [index].name) + 16;
    char *text = (char *) malloc (size);
    assert (text);
    size_t used = 0;
    text [0] = 0;
    for (size_t index = 0; index < self->count; index++)
        used += snprintf (text + used, size - used, "%s%s (%s)", index? ", ": "",
                          self->tokens [index].name, s_roles [self->tokens [index].role]);
    pthread_rwlock_unlock (&self->lock);
    return text;
}


//  --------------------------------------------------------------------------
//  Does this Authorization header carry an accepted bearer token?

bool
lh_http_auth_check (lh_http_auth_t *self, const char *authorization)
{
    return lh_http_auth_role (self, authorization) != NULL;
}


//  --------------------------------------------------------------------------
//  The role an Authorization header value grants, or NULL

const char *
lh_http_auth_role (lh_http_auth_t *self, const char *authorization)
{
    assert (self);
    pthread_rwlock_rdlock (&self->lock);
    bool open = self->count == 0;
    pthread_rwlock_unlock (&self->lock);
    if (open)
        return s_roles [0];
    if (!authorization || strncasecmp (authorization, "Bearer ", 7) != 0)
        return NULL;
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    size_t size = strlen (token);
    while (size && (token [size - 1] == ' ' || token [size - 1] == '\t'))
        size--;
    if (size == 0 || size > S_TOKEN_MAX)
        return NULL;

    //  Every token is compared every time; the match's role is picked
    //  with masks, not branches
    uint8_t hash [S_HASH_SIZE];
    crypto_hash_sha256 (hash, (const uint8_t *) token, size);
    unsigned matched = 0;
    unsigned role = 0;
    pthread_rwlock_rdlock (&self->lock);
    for (size_t index = 0; index < self->count; index++) {
        unsigned match = sodium_memcmp (hash, self->tokens [index].hash, S_HASH_SIZE) == 0;
        unsigned mask = 0u - match;
        role |= mask & self->tokens [index].role;
        matched |= match;
    }
    pthread_rwlock_unlock (&self->lock);
    return matched? s_roles [role < S_ROLE_COUNT? role: 0]: NULL;
}


//  --------------------------------------------------------------------------
//  Is the client address in the allow-list?

bool
lh_http_auth_allowed (lh_http_auth_t *self, const struct sockaddr *address)
{
    assert (self);
    if (self->cidr_count == 0)
        return true;
    uint8_t bytes [16];
    if (s_address_bytes (address, bytes))
        return false;
    for (size_t index = 0; index < self->cidr_count; index++)
        if (s_cidr_contains (&self->cidrs [index], bytes))
            return true;
    return false;
}


//  --------------------------------------------------------------------------
//  Is this address a loopback address?

bool
lh_http_auth_loopback (const struct sockaddr *address)
{
    uint8_t bytes [16];
    if (s_address_bytes (address, bytes))
        return false;
    static const uint8_t v6_loopback [16] = { [15] = 1 };
    s_cidr_t v4_loopback = { .address = { [10] = 0xff, [11] = 0xff, [12] = 127 }, .prefix = 104 };
    return memcmp (bytes, v6_loopback, 16) == 0 || s_cidr_contains (&v4_loopback, bytes);
}


//  --------------------------------------------------------------------------
//  Self test: token sources, file mode, rotation, compare, CIDR matching

static struct sockaddr_storage
s_test_address (const char *text)
{
    struct sockaddr_storage storage;
    memset (&storage, 0, sizeof (storage));
    struct sockaddr_in *in = (struct sockaddr_in *) &storage;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &storage;
    if (inet_pton (AF_INET, text, &in->sin_addr) == 1)
        in->sin_family = AF_INET;
    else {
        int rc = inet_pton (AF_INET6, text, &in6->sin6_addr);
        assert (rc == 1);
        in6->sin6_family = AF_INET6;
    }
    return storage;
}

static void
s_test_write (const char *path, const char *text, mode_t mode)
{
    char temp [256];
    snprintf (temp, sizeof (temp), "%s.tmp", path);
    FILE *file = fopen (temp, "w");
    assert (file);
    fputs (text, file);
    fclose (file);
    int rc = chmod (temp, mode);
    assert (rc == 0);
    rc = rename (temp, path);
    assert (rc == 0);
}

void
lh_http_auth_test (bool verbose)
{
    printf (" * lh_http_auth: ");
    unsetenv ("LAKEHOUSE_TOKEN");
    unsetenv ("LAKEHOUSE_TOKENS");
    char *error = NULL;

    //  No tokens: everything passes
    lh_http_auth_t *auth = lh_http_auth_new (NULL, NULL, &error);
    assert (auth && !error);
    assert (lh_http_auth_tokens (auth) == 0);
    assert (lh_http_auth_check (auth, NULL));
    lh_http_auth_destroy (&auth);
    assert (auth == NULL);

    //  Environment: primary and secondaries
    setenv ("LAKEHOUSE_TOKEN", "primary-token-0123456789", 1);
    setenv ("LAKEHOUSE_TOKENS", " second-token-0123456789 ,third-token-0123456789,", 1);
    auth = lh_http_auth_new ("", "", &error);
    assert (auth);
    assert (lh_http_auth_tokens (auth) == 3);
    assert (lh_http_auth_check (auth, "Bearer primary-token-0123456789"));
    assert (lh_http_auth_check (auth, "bearer  second-token-0123456789 "));
    assert (lh_http_auth_check (auth, "Bearer third-token-0123456789"));
    assert (!lh_http_auth_check (auth, "Bearer third-token-012345678"));
    assert (!lh_http_auth_check (auth, "Bearer third-token-01234567890"));
    assert (!lh_http_auth_check (auth, "Basic primary-token-0123456789"));
    assert (!lh_http_auth_check (auth, "Bearer "));
    assert (!lh_http_auth_check (auth, ""));
    assert (!lh_http_auth_check (auth, NULL));
    lh_http_auth_destroy (&auth);

    //  A short token is refused
    setenv ("LAKEHOUSE_TOKEN", "short", 1);
    auth = lh_http_auth_new (NULL, NULL, &error);
    assert (!auth && error);
    if (verbose)
        printf ("\n   %s", error);
    zstr_free (&error);
    unsetenv ("LAKEHOUSE_TOKEN");
    unsetenv ("LAKEHOUSE_TOKENS");

    //  Token file: mode must be 0600, rotation without restart
    char path [256];
    snprintf (path, sizeof (path), "/tmp/lh-http-auth-test-%d.tokens", (int) getpid ());
    s_test_write (path, "# tokens\nfile-primary-0123456789\n\n  file-second-0123456789\n", 0644);
    auth = lh_http_auth_new (path, NULL, &error);
    assert (!auth && error && strstr (error, "chmod 600"));
    if (verbose)
        printf ("\n   %s", error);
    zstr_free (&error);
    s_test_write (path, "# tokens\nfile-primary-0123456789\n\n  file-second-0123456789\n", 0600);
    auth = lh_http_auth_new (path, NULL, &error);
    assert (auth);
    assert (lh_http_auth_tokens (auth) == 2);
    assert (lh_http_auth_check (auth, "Bearer file-primary-0123456789"));
    assert (lh_http_auth_check (auth, "Bearer file-second-0123456789"));
    assert (lh_http_auth_reload (auth, false, &error) == 0);
    s_test_write (path, "file-second-0123456789\n", 0600);
    assert (lh_http_auth_reload (auth, false, &error) == 1);
    assert (!lh_http_auth_check (auth, "Bearer file-primary-0123456789"));
    assert (lh_http_auth_check (auth, "Bearer file-second-0123456789"));
    //  An emptied file keeps the current set
    s_test_write (path, "\n", 0600);
    assert (lh_http_auth_reload (auth, false, &error) == -1);
    zstr_free (&error);
    assert (lh_http_auth_check (auth, "Bearer file-second-0123456789"));
    //  A file made readable by others is refused, the set stays
    s_test_write (path, "file-third-0123456789\n", 0640);
    assert (lh_http_auth_reload (auth, true, &error) == -1);
    zstr_free (&error);
    assert (lh_http_auth_check (auth, "Bearer file-second-0123456789"));
    assert (!lh_http_auth_check (auth, "Bearer file-third-0123456789"));
    lh_http_auth_destroy (&auth);

    //  Roles: a token file line may name its role (client by default) and
    //  its name; the environment's tokens are client; no token: client
    auth = lh_http_auth_new (NULL, NULL, &error);
    assert (auth && streq (lh_http_auth_role (auth, NULL), "client"));
    lh_http_auth_destroy (&auth);
    setenv ("LAKEHOUSE_TOKEN", "env-primary-0123456789", 1);
    s_test_write (path, "# roles\nfile-client-0123456789\n"
                        "file-admin-0123456789 role=admin name=ops\n"
                        "file-named-0123456789   name=ci role=client\n"
                        "file-tapper-0123456789 role=tap name=wall\n", 0600);
    auth = lh_http_auth_new (path, NULL, &error);
    assert (auth && lh_http_auth_tokens (auth) == 5);
    assert (streq (lh_http_auth_role (auth, "Bearer file-tapper-0123456789"), "tap"));
    assert (streq (lh_http_auth_role (auth, "Bearer env-primary-0123456789"), "client"));
    assert (streq (lh_http_auth_role (auth, "Bearer file-client-0123456789"), "client"));
    assert (streq (lh_http_auth_role (auth, "Bearer file-admin-0123456789"), "admin"));
    assert (streq (lh_http_auth_role (auth, "Bearer file-named-0123456789"), "client"));
    assert (lh_http_auth_role (auth, "Bearer file-admin-012345678") == NULL);
    assert (lh_http_auth_role (auth, NULL) == NULL);
    char *described = lh_http_auth_describe (auth);
    assert (streq (described, "primary (client), secondary (client), ops (admin), ci (client), "
                              "wall (tap)"));
    assert (!strstr (described, "0123456789"));
    zstr_free (&described);
    //  A reload that demotes the admin token takes its role away
    s_test_write (path, "file-admin-0123456789 role=client\n", 0600);
    assert (lh_http_auth_reload (auth, true, &error) == 1);
    assert (streq (lh_http_auth_role (auth, "Bearer file-admin-0123456789"), "client"));
    lh_http_auth_destroy (&auth);
    unsetenv ("LAKEHOUSE_TOKEN");
    const char *bad_lines [] = {
        "file-token-0123456789 role=root\n", "file-token-0123456789 role=\n",
        "file-token-0123456789 name=a/b\n", "file-token-0123456789 admin\n",
        "file-token-0123456789 role=admin extra\n",
    };
    for (size_t index = 0; index < sizeof (bad_lines) / sizeof (bad_lines [0]); index++) {
        s_test_write (path, bad_lines [index], 0600);
        auth = lh_http_auth_new (path, NULL, &error);
        assert (!auth && error && strstr (error, ":1:"));
        if (verbose)
            printf ("\n   %s", error);
        zstr_free (&error);
    }
    unlink (path);

    //  CIDR allow-list
    auth = lh_http_auth_new (NULL, "10.0.0.0/8, 192.168.1.7 ,fd00::/8,::1/128", &error);
    assert (auth);
    struct {
        const char *address;
        bool allowed;
    } cases [] = {
        { "10.1.2.3", true }, { "11.0.0.1", false }, { "192.168.1.7", true },
        { "192.168.1.8", false }, { "fd12::1", true }, { "fe80::1", false },
        { "::1", true }, { "::2", false }, { "::ffff:10.9.9.9", true },
        { "127.0.0.1", false },
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++) {
        struct sockaddr_storage address = s_test_address (cases [index].address);
        assert (lh_http_auth_allowed (auth, (struct sockaddr *) &address) == cases [index].allowed);
    }
    lh_http_auth_destroy (&auth);
    auth = lh_http_auth_new (NULL, "172.16.0.0/12", &error);
    struct sockaddr_storage address = s_test_address ("172.31.255.255");
    assert (lh_http_auth_allowed (auth, (struct sockaddr *) &address));
    address = s_test_address ("172.32.0.0");
    assert (!lh_http_auth_allowed (auth, (struct sockaddr *) &address));
    lh_http_auth_destroy (&auth);
    const char *bad [] = { "10.0.0.0/33", "::1/129", "nonsense", "10.0.0.0/", "1.2.3.4/x" };
    for (size_t index = 0; index < sizeof (bad) / sizeof (bad [0]); index++) {
        auth = lh_http_auth_new (NULL, bad [index], &error);
        assert (!auth && error);
        zstr_free (&error);
    }
    //  Loopback
    const char *loop [] = { "127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1" };
    for (size_t index = 0; index < 4; index++) {
        address = s_test_address (loop [index]);
        assert (lh_http_auth_loopback ((struct sockaddr *) &address));
    }
    const char *not_loop [] = { "0.0.0.0", "::", "10.0.0.1", "128.0.0.1" };
    for (size_t index = 0; index < 4; index++) {
        address = s_test_address (not_loop [index]);
        assert (!lh_http_auth_loopback ((struct sockaddr *) &address));
    }
    printf ("OK\n");
}
