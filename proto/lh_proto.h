/*  =========================================================================
    lh_proto - LHB/1, the Lakehouse bus protocol: frames, header codec,
    status codes, error bodies, and the one bounded msgpack reader.

    Every message on the bus is two or three frames (after the ROUTER's
    routing id, when there is one):

        F0  "LHB1"      signature + version
        F1  header      msgpack map with short string keys (see lh_header_t)
        F2  body        optional, msgpack, opaque to the broker

    All decoding of untrusted bytes goes through lh_reader_t: every read
    checks the bytes left, every count is checked against the bytes left
    and a configured maximum before anything is allocated. Decoders return
    0 (ok), -1 (truncated: ran out of bytes) or -2 (malformed).
    =========================================================================
*/

#ifndef LH_PROTO_H_INCLUDED
#define LH_PROTO_H_INCLUDED

#include <czmq.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LH_SIGNATURE        "LHB1"
#define LH_SIGNATURE_SIZE   4

//  Sizes of the fixed header fields (bytes, without the terminating NUL).
//  A header whose string is longer than its field is malformed.
#define LH_NAME_MAX         64      //  svc, op, name, src
#define LH_TOPIC_MAX        255     //  PUB/SUB topic
#define LH_IDEM_MAX         128     //  idempotency key
#define LH_TRACE_SIZE       32      //  W3C trace-id, lowercase hex
#define LH_SPAN_SIZE        16      //  W3C span-id (parent-id), lowercase hex
#define LH_UID_SIZE         40      //  Z85 public key
#define LH_OPS_MAX          1024    //  READY: comma-separated op names
#define LH_HEADER_KEYS_MAX  32      //  most keys one header map may hold
#define LH_HEADER_MAX       4096    //  largest encoded header frame
#define LH_UNPACK_DEPTH_MAX 32      //  deepest nesting msgpack-c unpacks

//  Message types (header key "t")
typedef enum {
    LH_T_NONE = 0,
    LH_T_HELLO,         //  peer -> broker: name
    LH_T_WELCOME,       //  broker -> peer: hb_ivl, hb_live, max_msg
    LH_T_READY,         //  worker -> broker: svc, ops, credit
    LH_T_REQ,           //  client -> broker -> worker: svc, op, id, dl...
    LH_T_PART,          //  worker -> broker -> client: cid, partial body
    LH_T_REP,           //  worker -> broker -> client: cid, st, body
    LH_T_PUB,           //  any -> broker -> subscribers: topic, body
    LH_T_SUB,           //  peer -> broker: topic prefix to receive
    LH_T_HB,            //  heartbeat, either way, only when idle
    LH_T_BYE,           //  either way: the session ends (st, body = reason)
    LH_T_CREDIT,        //  worker -> broker: credit more requests
    LH_T_COUNT
} lh_type_t;

//  Status codes (header key "st"); HTTP semantics, SPEC section 4
#define LH_ST_OK                200
#define LH_ST_CREATED           201
#define LH_ST_BAD_REQUEST       400
#define LH_ST_UNAUTHORIZED      401
#define LH_ST_FORBIDDEN         403
#define LH_ST_NOT_FOUND         404
#define LH_ST_CONFLICT          409
#define LH_ST_PRECONDITION      412
#define LH_ST_TOO_LARGE         413
#define LH_ST_UNPROCESSABLE     422
#define LH_ST_TOO_MANY          429
#define LH_ST_INTERNAL          500
#define LH_ST_BAD_GATEWAY       502
#define LH_ST_UNAVAILABLE       503
#define LH_ST_TIMEOUT           504

//  Bits of lh_header_t.has: which keys the decoded map carried
#define LH_H_T          (1u << 0)
#define LH_H_ID         (1u << 1)
#define LH_H_CID        (1u << 2)
#define LH_H_SVC        (1u << 3)
#define LH_H_OP         (1u << 4)
#define LH_H_TOPIC      (1u << 5)
#define LH_H_DL         (1u << 6)
#define LH_H_IDEM       (1u << 7)
#define LH_H_Q          (1u << 8)
#define LH_H_TR         (1u << 9)
#define LH_H_ST         (1u << 10)
#define LH_H_CREDIT     (1u << 11)
#define LH_H_SRC        (1u << 12)
#define LH_H_UID        (1u << 13)
#define LH_H_BSEQ       (1u << 14)
#define LH_H_BRX        (1u << 15)
#define LH_H_ATT        (1u << 16)
#define LH_H_NAME       (1u << 17)
#define LH_H_HB_IVL     (1u << 18)
#define LH_H_HB_LIVE    (1u << 19)
#define LH_H_MAX_MSG    (1u << 20)
#define LH_H_OPS        (1u << 21)
#define LH_H_SOLO       (1u << 22)
#define LH_H_PS         (1u << 23)
#define LH_H_STAMPS     (LH_H_SRC | LH_H_UID | LH_H_BSEQ | LH_H_BRX | LH_H_ATT)

//  A decoded header. Fixed-size fields: decoding never allocates.
//  Only fields whose bit is set in `has` are meaningful.
typedef struct {
    uint32_t has;                       //  LH_H_* bits of keys present
    lh_type_t t;                        //  message type
    uint64_t id;                        //  sender's message id
    uint64_t cid;                       //  id of the request answered
    uint64_t dl;                        //  deadline, ms relative
    uint64_t bseq;                      //  broker sequence number
    uint64_t brx;                       //  broker receive time, us
    uint64_t max_msg;                   //  WELCOME: largest message, bytes
    uint32_t st;                        //  status
    uint32_t credit;                    //  READY/CREDIT: more requests
    uint32_t att;                       //  delivery attempt
    uint32_t hb_ivl;                    //  WELCOME: heartbeat interval, ms
    uint32_t hb_live;                   //  WELCOME: intervals before dead
    bool q;                             //  queue while no worker
    char svc [LH_NAME_MAX + 1];         //  service
    char op [LH_NAME_MAX + 1];          //  operation
    char name [LH_NAME_MAX + 1];        //  HELLO: peer name
    char src [LH_NAME_MAX + 1];         //  stamped sender name
    char uid [LH_UID_SIZE + 1];         //  stamped sender key (Z85)
    char tr [LH_TRACE_SIZE + 1];        //  trace id
    char ps [LH_SPAN_SIZE + 1];         //  parent span id (the caller's span)
    char idem [LH_IDEM_MAX + 1];        //  idempotency key
    char topic [LH_TOPIC_MAX + 1];      //  PUB/SUB topic
    char ops [LH_OPS_MAX + 1];          //  READY: "op1,op2,..."
    char solo [LH_NAME_MAX + 1];        //  READY: single-instance, the offering
                                        //  process's instance id
} lh_header_t;

//  Limits applied by the bounded msgpack checker (bodies)
typedef struct {
    size_t max_depth;                   //  nesting of arrays/maps
    size_t max_elements;                //  all elements in the message
    size_t max_string;                  //  bytes in one str/bin/ext
} lh_limits_t;

//  Default body limits: depth 32 (msgpack-c's own unpack limit), 1M
//  elements, 16 MiB strings
extern const lh_limits_t lh_limits_default;

//  ---------------------------------------------------------------------
//  Names and statuses

//  Return the wire name of a message type ("REQ"), or NULL
const char *
    lh_type_name (lh_type_t type);

//  Return the message type for a wire name, or LH_T_NONE
lh_type_t
    lh_type_lookup (const char *name, size_t size);

//  Return a short reason phrase for a status ("Not Found")
const char *
    lh_status_text (uint32_t status);

//  Return the default error kind for a status ("not_found")
const char *
    lh_status_kind (uint32_t status);

//  ---------------------------------------------------------------------
//  Header codec

//  Reset a header to "nothing present", type t
void
    lh_header_init (lh_header_t *self, lh_type_t t);

//  Take the settings a WELCOME carries: each of hb_ivl, hb_live and
//  max_msg that is present and not zero replaces the caller's value
void
    lh_header_welcome (const lh_header_t *self, uint32_t *hb_ivl,
                       uint32_t *hb_live, uint64_t *max_msg);

//  Copy a string into a fixed header field and set its bit. Strings longer
//  than the field are truncated (callers validate names before this).
void
    lh_header_set_str (lh_header_t *self, uint32_t bit, const char *value);

//  Encode header as a msgpack map into buffer. Returns encoded size, or -1
//  if it does not fit in capacity.
int
    lh_header_encode (const lh_header_t *self, uint8_t *buffer, size_t capacity);

//  Decode a header frame. Unknown keys are skipped (bounded). Returns 0 on
//  success, -1 if truncated, -2 if malformed (wrong type for a key, string
//  too long for its field, too many keys, unknown "t"). Never allocates.
int
    lh_header_decode (lh_header_t *self, const uint8_t *data, size_t size);

//  ---------------------------------------------------------------------
//  Bounded msgpack reader: the only code that reads wire msgpack

typedef struct {
    const uint8_t *ptr;                 //  next byte to read
    const uint8_t *end;                 //  one past the last byte
} lh_reader_t;

void
    lh_reader_init (lh_reader_t *self, const void *data, size_t size);
//  Bytes left to read
size_t
    lh_reader_left (lh_reader_t *self);
//  Each reader returns 0, -1 (truncated) or -2 (wrong type / too big).
int
    lh_reader_map (lh_reader_t *self, uint32_t *count);
int
    lh_reader_array (lh_reader_t *self, uint32_t *count);
int
    lh_reader_str (lh_reader_t *self, const char **str, uint32_t *size);
int
    lh_reader_uint (lh_reader_t *self, uint64_t *value);
int
    lh_reader_bool (lh_reader_t *self, bool *value);
//  Skip one whole object, nested no deeper than max_depth
int
    lh_reader_skip (lh_reader_t *self, size_t max_depth);

//  Walk a whole msgpack object (exactly one, filling all of size) and check
//  every count against the bytes left and the limits, before any decoder
//  allocates. Returns 0 if safe to unpack, -1 truncated, -2 malformed.
int
    lh_msgpack_check (const void *data, size_t size, const lh_limits_t *limits);

//  Check, then unpack into a zone owned by the caller (msgpack_zone_init /
//  msgpack_zone_destroy). Returns 0, -1 or -2 as lh_msgpack_check.
int
    lh_msgpack_unpack (const void *data, size_t size, const lh_limits_t *limits,
                       msgpack_zone *zone, msgpack_object *object);

//  ---------------------------------------------------------------------
//  Messages on sockets

//  A received message. Frames are owned by the message.
typedef struct {
    zframe_t *routing;                  //  ROUTER routing id, or NULL
    zframe_t *header_frame;             //  raw header (for zframe_meta)
    zframe_t *body;                     //  body frame, or NULL
    lh_header_t header;                 //  decoded header
} lh_msg_t;

//  zhashx key functions for uint64_t request ids kept by address (the
//  broker's, the client's and the bus pump's tables of requests)
size_t
    lh_id_hash (const void *key);
int
    lh_id_compare (const void *key1, const void *key2);

//  Receive one whole message from a socket (all its parts, always, even
//  when it is malformed). If router is true, the first frame is a routing
//  id. Returns 0 on success, -1 if interrupted or nothing could be read,
//  -2 if the message was malformed (wrong signature, bad frame count,
//  bad header, body over max_body). On -2 the message is discarded.
int
    lh_msg_recv (lh_msg_t *self, void *socket, bool router, size_t max_body);

//  Receive one whole message if one is waiting, without blocking: returns
//  as lh_msg_recv, or 1 when nothing is waiting. Reading until it returns 1
//  leaves the socket's ZMQ_FD safe to poll (libzmq signals it again when
//  something new arrives); any send on the socket after that voids this.
int
    lh_msg_try_recv (lh_msg_t *self, void *socket, bool router, size_t max_body);

//  Free the frames a received message holds; safe to call twice.
void
    lh_msg_reset (lh_msg_t *self);

//  Send a message: routing frame (borrowed, may be NULL), header, and body
//  (taken on success, NULL for no body). Sends are non-blocking. Returns 0,
//  or -1 with errno set (EAGAIN when the peer's queue is full,
//  EHOSTUNREACH when the routing id is unknown); on -1 the body stays the
//  caller's.
int
    lh_msg_send (void *socket, zframe_t *routing, const lh_header_t *header,
                 zframe_t **body_p);

//  Build the SPEC error body {"error":{"kind":K,"reason":R}} and, when
//  retry_after_ms > 0, "retry_after_ms" inside the error. Returns a new
//  frame. kind NULL means lh_status_kind (status).
zframe_t *
    lh_error_body (uint32_t status, const char *kind, const char *reason,
                   uint64_t retry_after_ms);

//  The same with "field": the request field at fault (NULL: none)
zframe_t *
    lh_error_body_field (uint32_t status, const char *kind, const char *reason,
                         const char *field, uint64_t retry_after_ms);

//  Self test of this class
void
    lh_proto_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
