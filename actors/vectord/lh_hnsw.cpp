/*  =========================================================================
    lh_hnsw - the C shim over hnswlib; see lh_hnsw.h

    The only C++ file of the tree. Nothing here throws past the extern "C"
    boundary: every hnswlib call is wrapped.
    =========================================================================
*/

#include "lh_hnsw.h"
//  hnswlib 0.6.2's SSE prefetches in searchBaseLayer read the link after
//  the last one of a full upper-level list: 4 bytes past the requested
//  size, always inside malloc's rounding (68 x L + 1 bytes asked), so
//  harmless, but AddressSanitizer reports it. Sanitizer builds therefore
//  use hnswlib's scalar code.
#if defined (__SANITIZE_ADDRESS__)
#   define NO_MANUAL_VECTORIZATION
#endif
#include <hnswlib/hnswlib.h>
#include <pthread.h>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <queue>
#include <vector>
#include <sys/stat.h>
#include <unistd.h>
#include <cassert>
#include <cstdlib>
#if defined (__x86_64__)
#   include <immintrin.h>
#endif

//  From the actor runtime (lh_actor.h): heartbeat this worker if due; a
//  no-op off worker threads. Long batches call it every S_KEEPALIVE points.
extern "C" void lh_keepalive (void);
#define S_KEEPALIVE         64

typedef hnswlib::HierarchicalNSW<float> s_graph_t;
typedef std::priority_queue<std::pair<float, uint64_t>> s_heap_t;

#define S_CAPACITY_MIN      64          //  first allocation, vectors
#define S_VERY_SELECTIVE    50          //  filter passes < 1 in this many: exact

struct _lh_hnsw_t {
    size_t dim;                         //  components per vector
    lh_metric_t metric;                 //  distance
    size_t m;                           //  hnswlib M
    size_t ef_construction;             //  hnswlib ef_construction
    size_t ef;                          //  default search ef
    hnswlib::SpaceInterface<float> *space;  //  L2Space or InnerProductSpace
    s_graph_t *graph;                   //  the graph
    pthread_rwlock_t lock;              //  searches shared, writes exclusive
};


//  --------------------------------------------------------------------------
//  Distances with the widest vectors this CPU has. hnswlib 0.6.2 picks its
//  SIMD code when it is compiled (-mavx512f), which a binary for every
//  x86-64 cannot be; these are compiled for AVX-512 and AVX2+FMA beside
//  the baseline and chosen at run time. Two accumulators each: the loads
//  of a vector not in cache overlap. At 768 dimensions a distance over a
//  vector in memory took 534 ns with SSE, 337 with AVX2, 186 with
//  AVX-512 (a microbenchmark on this machine's EPYC); most of a search's
//  time is these.

#if defined (__x86_64__)
//  The sixteen lanes of a summed to one, through memory: GCC 12's
//  reductions and 256-bit extracts trip -Wuninitialized on the undefined
//  vectors they use (GCC bug 105593)
__attribute__ ((target ("avx512f"))) static float
s_sum_avx512 (__m512 sum)
{
    float lanes [16];
    _mm512_storeu_ps (lanes, sum);
    float total = 0;
    for (int lane = 0; lane < 16; lane++)
        total += lanes [lane];
    return total;
}

__attribute__ ((target ("avx512f"))) static float
s_dot_avx512 (const float *a, const float *b, size_t dim)
{
    __m512 sum0 = _mm512_setzero_ps (), sum1 = _mm512_setzero_ps ();
    size_t index = 0;
    for (; index + 32 <= dim; index += 32) {
        sum0 = _mm512_fmadd_ps (_mm512_loadu_ps (a + index), _mm512_loadu_ps (b + index), sum0);
        sum1 = _mm512_fmadd_ps (_mm512_loadu_ps (a + index + 16), _mm512_loadu_ps (b + index + 16), sum1);
    }
    for (; index + 16 <= dim; index += 16)
        sum0 = _mm512_fmadd_ps (_mm512_loadu_ps (a + index), _mm512_loadu_ps (b + index), sum0);
    float sum = s_sum_avx512 (_mm512_add_ps (sum0, sum1));
    for (; index < dim; index++)
        sum += a [index] * b [index];
    return sum;
}

__attribute__ ((target ("avx512f"))) static float
s_l2_avx512 (const float *a, const float *b, size_t dim)
{
    __m512 sum0 = _mm512_setzero_ps (), sum1 = _mm512_setzero_ps ();
    size_t index = 0;
    for (; index + 32 <= dim; index += 32) {
        __m512 diff0 = _mm512_sub_ps (_mm512_loadu_ps (a + index), _mm512_loadu_ps (b + index));
        __m512 diff1 = _mm512_sub_ps (_mm512_loadu_ps (a + index + 16), _mm512_loadu_ps (b + index + 16));
        sum0 = _mm512_fmadd_ps (diff0, diff0, sum0);
        sum1 = _mm512_fmadd_ps (diff1, diff1, sum1);
    }
    for (; index + 16 <= dim; index += 16) {
        __m512 diff = _mm512_sub_ps (_mm512_loadu_ps (a + index), _mm512_loadu_ps (b + index));
        sum0 = _mm512_fmadd_ps (diff, diff, sum0);
    }
    float sum = s_sum_avx512 (_mm512_add_ps (sum0, sum1));
    for (; index < dim; index++)
        sum += (a [index] - b [index]) * (a [index] - b [index]);
    return sum;
}

//  The eight lanes of a summed to one
__attribute__ ((target ("avx2,fma"))) static float
s_sum_avx2 (__m256 sum)
{
    __m128 half = _mm_add_ps (_mm256_castps256_ps128 (sum), _mm256_extractf128_ps (sum, 1));
    half = _mm_add_ps (half, _mm_movehl_ps (half, half));
    half = _mm_add_ss (half, _mm_shuffle_ps (half, half, 1));
    return _mm_cvtss_f32 (half);
}

__attribute__ ((target ("avx2,fma"))) static float
s_dot_avx2 (const float *a, const float *b, size_t dim)
{
    __m256 sum0 = _mm256_setzero_ps (), sum1 = _mm256_setzero_ps ();
    size_t index = 0;
    for (; index + 16 <= dim; index += 16) {
        sum0 = _mm256_fmadd_ps (_mm256_loadu_ps (a + index), _mm256_loadu_ps (b + index), sum0);
        sum1 = _mm256_fmadd_ps (_mm256_loadu_ps (a + index + 8), _mm256_loadu_ps (b + index + 8), sum1);
    }
    float sum = s_sum_avx2 (_mm256_add_ps (sum0, sum1));
    for (; index < dim; index++)
        sum += a [index] * b [index];
    return sum;
}

__attribute__ ((target ("avx2,fma"))) static float
s_l2_avx2 (const float *a, const float *b, size_t dim)
{
    __m256 sum0 = _mm256_setzero_ps (), sum1 = _mm256_setzero_ps ();
    size_t index = 0;
    for (; index + 16 <= dim; index += 16) {
        __m256 diff0 = _mm256_sub_ps (_mm256_loadu_ps (a + index), _mm256_loadu_ps (b + index));
        __m256 diff1 = _mm256_sub_ps (_mm256_loadu_ps (a + index + 8), _mm256_loadu_ps (b + index + 8));
        sum0 = _mm256_fmadd_ps (diff0, diff0, sum0);
        sum1 = _mm256_fmadd_ps (diff1, diff1, sum1);
    }
    float sum = s_sum_avx2 (_mm256_add_ps (sum0, sum1));
    for (; index < dim; index++)
        sum += (a [index] - b [index]) * (a [index] - b [index]);
    return sum;
}
#endif

typedef float (s_kernel_fn) (const float *a, const float *b, size_t dim);
static s_kernel_fn *s_dot_kernel;       //  widest inner product, or NULL
static s_kernel_fn *s_l2_kernel;        //  widest squared distance, or NULL

static float
s_ip_distance (const void *a, const void *b, const void *dim)
{
    return 1.0f - s_dot_kernel ((const float *) a, (const float *) b, *(const size_t *) dim);
}

static float
s_l2_distance (const void *a, const void *b, const void *dim)
{
    return s_l2_kernel ((const float *) a, (const float *) b, *(const size_t *) dim);
}

//  A space whose distance is one of ours
class s_space_t : public hnswlib::SpaceInterface<float> {
    hnswlib::DISTFUNC<float> distance_;
    size_t dim_;
  public:
    s_space_t (size_t dim, hnswlib::DISTFUNC<float> distance) : distance_ (distance), dim_ (dim) {}
    size_t get_data_size () { return dim_ * sizeof (float); }
    hnswlib::DISTFUNC<float> get_dist_func () { return distance_; }
    void *get_dist_func_param () { return &dim_; }
};

//  Pick the kernels once
static void
s_kernels_pick (void)
{
#if defined (__x86_64__)
    __builtin_cpu_init ();
    if (__builtin_cpu_supports ("avx512f")) {
        s_dot_kernel = s_dot_avx512;
        s_l2_kernel = s_l2_avx512;
    }
    else
    if (__builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma")) {
        s_dot_kernel = s_dot_avx2;
        s_l2_kernel = s_l2_avx2;
    }
#endif
}


//  --------------------------------------------------------------------------
//  Space of a metric: ours when the CPU has AVX2 or better, else hnswlib's

static hnswlib::SpaceInterface<float> *
s_space_new (size_t dim, lh_metric_t metric)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once (&once, s_kernels_pick);
    if (metric == LH_METRIC_L2)
        return s_l2_kernel? (hnswlib::SpaceInterface<float> *) new s_space_t (dim, s_l2_distance):
                            new hnswlib::L2Space (dim);
    return s_dot_kernel? (hnswlib::SpaceInterface<float> *) new s_space_t (dim, s_ip_distance):
                         new hnswlib::InnerProductSpace (dim);
}


//  --------------------------------------------------------------------------
//  Shell of an index with its lock; graph still NULL

static lh_hnsw_t *
s_shell_new (size_t dim, lh_metric_t metric, size_t ef)
{
    lh_hnsw_t *self = new (std::nothrow) lh_hnsw_t ();
    if (!self)
        return NULL;
    self->dim = dim;
    self->metric = metric;
    self->ef = ef? ef: 64;
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init (&attr);
    //  Writers first: a steady stream of searches must not starve adds
    pthread_rwlockattr_setkind_np (&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init (&self->lock, &attr);
    pthread_rwlockattr_destroy (&attr);
    self->space = s_space_new (dim, metric);
    return self;
}


//  --------------------------------------------------------------------------
//  Create an empty index

lh_hnsw_t *
lh_hnsw_new (size_t dim, lh_metric_t metric, size_t m, size_t ef_construction, size_t ef)
{
    if (dim == 0 || dim > 65536 || m < 2 || m > 256)
        return NULL;
    lh_hnsw_t *self = s_shell_new (dim, metric, ef);
    if (!self)
        return NULL;
    self->m = m;
    self->ef_construction = ef_construction? ef_construction: 200;
    try {
        self->graph = new s_graph_t (self->space, S_CAPACITY_MIN, m, self->ef_construction);
    }
    catch (...) {
        self->graph = NULL;
    }
    if (!self->graph)
        lh_hnsw_destroy (&self);
    return self;
}


//  --------------------------------------------------------------------------
//  Destroy an index

void
lh_hnsw_destroy (lh_hnsw_t **self_p)
{
    assert (self_p);
    lh_hnsw_t *self = *self_p;
    if (self) {
        delete self->graph;
        delete self->space;
        pthread_rwlock_destroy (&self->lock);
        delete self;
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Parse a metric name

int
lh_metric_parse (const char *name, size_t size, lh_metric_t *metric)
{
    if (size == 6 && memcmp (name, "cosine", 6) == 0)
        *metric = LH_METRIC_COSINE;
    else
    if (size == 2 && memcmp (name, "l2", 2) == 0)
        *metric = LH_METRIC_L2;
    else
    if (size == 2 && memcmp (name, "ip", 2) == 0)
        *metric = LH_METRIC_IP;
    else
        return -1;
    return 0;
}


//  --------------------------------------------------------------------------
//  Name of a metric

const char *
lh_metric_name (lh_metric_t metric)
{
    return metric == LH_METRIC_L2? "l2": metric == LH_METRIC_IP? "ip": "cosine";
}


//  --------------------------------------------------------------------------
//  Check one vector: finite components; non-zero norm under cosine

int
lh_hnsw_vector_check (const float *vector, size_t dim, lh_metric_t metric)
{
    double norm = 0;
    for (size_t index = 0; index < dim; index++) {
        if (!std::isfinite (vector [index]))
            return -1;
        norm += (double) vector [index] * vector [index];
    }
    if (metric == LH_METRIC_COSINE && !(norm > 0 && std::isfinite (norm)))
        return -2;
    return 0;
}


//  --------------------------------------------------------------------------
//  Copy a vector, normalised under cosine, into out (dim floats)

static void
s_prepare (lh_hnsw_t *self, const float *vector, float *out)
{
    if (self->metric != LH_METRIC_COSINE) {
        memcpy (out, vector, self->dim * sizeof (float));
        return;
    }
    double norm = 0;
    for (size_t index = 0; index < self->dim; index++)
        norm += (double) vector [index] * vector [index];
    float scale = norm > 0? (float) (1.0 / sqrt (norm)): 0;
    for (size_t index = 0; index < self->dim; index++)
        out [index] = vector [index] * scale;
}


//  --------------------------------------------------------------------------
//  Is this label live in the graph? Caller holds the lock.

static bool
s_live (s_graph_t *graph, uint64_t label)
{
    auto found = graph->label_lookup_.find (label);
    return found != graph->label_lookup_.end () && !graph->isMarkedDeleted (found->second);
}


//  --------------------------------------------------------------------------
//  Add a batch under new labels (exclusive)

int
lh_hnsw_add (lh_hnsw_t *self, const uint64_t *labels, const float *vectors, size_t count)
{
    return lh_hnsw_apply (self, labels, vectors, count, NULL, 0);
}


//  --------------------------------------------------------------------------
//  Add a batch and tombstone labels, as one exclusive step

int
lh_hnsw_apply (lh_hnsw_t *self, const uint64_t *labels, const float *vectors,
               size_t count, const uint64_t *removed, size_t removed_count)
{
    assert (self);
    std::vector<float> prepared (self->dim);
    int rc = 0;
    pthread_rwlock_wrlock (&self->lock);
    s_graph_t *graph = self->graph;
    try {
        size_t needed = graph->cur_element_count + count;
        if (needed > graph->max_elements_) {
            size_t capacity = std::max (graph->max_elements_ + graph->max_elements_ / 2, needed);
            graph->resizeIndex (capacity);
        }
        for (size_t index = 0; index < count; index++) {
            s_prepare (self, vectors + index * self->dim, prepared.data ());
            graph->addPoint (prepared.data (), (hnswlib::labeltype) labels [index]);
            if (index % S_KEEPALIVE == S_KEEPALIVE - 1)
                lh_keepalive ();
        }
        for (size_t index = 0; index < removed_count; index++)
            if (s_live (graph, removed [index]))
                graph->markDelete ((hnswlib::labeltype) removed [index]);
    }
    catch (...) {
        rc = -1;
    }
    pthread_rwlock_unlock (&self->lock);
    return rc;
}


//  --------------------------------------------------------------------------
//  Tombstone labels

size_t
lh_hnsw_remove (lh_hnsw_t *self, const uint64_t *labels, size_t count)
{
    assert (self);
    size_t removed = 0;
    pthread_rwlock_wrlock (&self->lock);
    for (size_t index = 0; index < count; index++)
        if (s_live (self->graph, labels [index])) {
            self->graph->markDelete ((hnswlib::labeltype) labels [index]);
            removed++;
        }
    pthread_rwlock_unlock (&self->lock);
    return removed;
}


//  --------------------------------------------------------------------------
//  hnswlib's searchKnn with a per-query ef (hnswlib keeps ef in the graph,
//  shared by every thread). Caller holds the read lock. Returns up to
//  fetch (label, distance) pairs, nearest first.

static std::vector<std::pair<float, uint64_t>>
s_graph_search (s_graph_t *graph, const float *query, size_t fetch, size_t ef)
{
    std::vector<std::pair<float, uint64_t>> out;
    if (graph->cur_element_count == 0)
        return out;
    hnswlib::tableint current = graph->enterpoint_node_;
    float distance = graph->fstdistfunc_ (query, graph->getDataByInternalId (current),
                                          graph->dist_func_param_);
    for (int level = graph->maxlevel_; level > 0; level--) {
        bool changed = true;
        while (changed) {
            changed = false;
            unsigned int *data = (unsigned int *) graph->get_linklist (current, level);
            int size = graph->getListCount (data);
            hnswlib::tableint *links = (hnswlib::tableint *) (data + 1);
            for (int index = 0; index < size; index++) {
                hnswlib::tableint candidate = links [index];
                if (candidate >= graph->cur_element_count)
                    continue;
                float next = graph->fstdistfunc_ (query, graph->getDataByInternalId (candidate),
                                                  graph->dist_func_param_);
                if (next < distance) {
                    distance = next;
                    current = candidate;
                    changed = true;
                }
            }
        }
    }
    size_t width = std::max (ef, fetch);
    auto top = graph->num_deleted_?
        graph->searchBaseLayerST<true> (current, query, width):
        graph->searchBaseLayerST<false> (current, query, width);
    while (top.size () > fetch)
        top.pop ();
    out.resize (top.size ());
    for (size_t index = out.size (); index > 0; index--) {
        out [index - 1] = std::make_pair (top.top ().first,
                                          (uint64_t) graph->getExternalLabel (top.top ().second));
        top.pop ();
    }
    return out;
}


//  --------------------------------------------------------------------------
//  Exact scan over the live vectors; caller holds the read lock

static size_t
s_exact (lh_hnsw_t *self, const float *query, size_t k, lh_hnsw_filter_fn *filter,
         void *arg, lh_hit_t *hits)
{
    s_graph_t *graph = self->graph;
    s_heap_t heap;
    for (hnswlib::tableint id = 0; id < graph->cur_element_count; id++) {
        if (graph->isMarkedDeleted (id))
            continue;
        float distance = graph->fstdistfunc_ (query, graph->getDataByInternalId (id),
                                              graph->dist_func_param_);
        if (heap.size () == k && distance >= heap.top ().first)
            continue;
        uint64_t label = graph->getExternalLabel (id);
        if (filter && !filter (label, arg))
            continue;
        heap.push (std::make_pair (distance, label));
        if (heap.size () > k)
            heap.pop ();
    }
    size_t found = heap.size ();
    for (size_t index = found; index > 0; index--) {
        hits [index - 1].label = heap.top ().second;
        hits [index - 1].distance = heap.top ().first;
        heap.pop ();
    }
    return found;
}


//  --------------------------------------------------------------------------
//  Live vectors; caller holds the lock

static size_t
s_live_count (s_graph_t *graph)
{
    return graph->cur_element_count - graph->num_deleted_;
}


//  --------------------------------------------------------------------------
//  k nearest that pass the filter: graph search with over-fetch, exact
//  scan when the index is small or the filter very selective

size_t
lh_hnsw_search (lh_hnsw_t *self, const float *query, size_t k, size_t ef,
                lh_hnsw_filter_fn *filter, void *arg, size_t skip_hint, lh_hit_t *hits)
{
    assert (self);
    if (k == 0)
        return 0;
    std::vector<float> prepared (self->dim);
    s_prepare (self, query, prepared.data ());
    size_t found = 0;
    pthread_rwlock_rdlock (&self->lock);
    try {
        size_t live = s_live_count (self->graph);
        if (live < LH_HNSW_EXACT_BELOW)
            found = s_exact (self, prepared.data (), k, filter, arg, hits);
        else {
            if (!ef)
                ef = self->ef;
            size_t fetch = filter? std::min (live, k + skip_hint + k): k;
            while (true) {
                auto near = s_graph_search (self->graph, prepared.data (), fetch, ef);
                found = 0;
                for (size_t index = 0; index < near.size () && found < k; index++)
                    if (!filter || filter (near [index].second, arg)) {
                        hits [found].label = near [index].second;
                        hits [found].distance = near [index].first;
                        found++;
                    }
                if (found == k || near.size () < fetch || fetch >= live)
                    break;
                //  Too few passed: over-fetch, or scan when the filter keeps
                //  so few that the graph would have to be walked whole
                if ((found + 1) * S_VERY_SELECTIVE < near.size () || fetch * 4 >= live) {
                    found = s_exact (self, prepared.data (), k, filter, arg, hits);
                    break;
                }
                fetch = std::min (live, fetch * 4);
            }
        }
    }
    catch (...) {
        found = 0;
    }
    pthread_rwlock_unlock (&self->lock);
    return found;
}


//  --------------------------------------------------------------------------
//  Exact search, for reference

size_t
lh_hnsw_search_exact (lh_hnsw_t *self, const float *query, size_t k,
                      lh_hnsw_filter_fn *filter, void *arg, lh_hit_t *hits)
{
    assert (self);
    if (k == 0)
        return 0;
    std::vector<float> prepared (self->dim);
    s_prepare (self, query, prepared.data ());
    pthread_rwlock_rdlock (&self->lock);
    size_t found = s_exact (self, prepared.data (), k, filter, arg, hits);
    pthread_rwlock_unlock (&self->lock);
    return found;
}


//  --------------------------------------------------------------------------
//  Counters

size_t
lh_hnsw_size (lh_hnsw_t *self)
{
    pthread_rwlock_rdlock (&self->lock);
    size_t size = s_live_count (self->graph);
    pthread_rwlock_unlock (&self->lock);
    return size;
}

size_t
lh_hnsw_deleted (lh_hnsw_t *self)
{
    pthread_rwlock_rdlock (&self->lock);
    size_t size = self->graph->num_deleted_;
    pthread_rwlock_unlock (&self->lock);
    return size;
}

size_t
lh_hnsw_ef (lh_hnsw_t *self)
{
    return self->ef;
}

void
lh_hnsw_set_ef (lh_hnsw_t *self, size_t ef)
{
    if (ef > 0)
        self->ef = ef;
}

size_t
lh_hnsw_dim (lh_hnsw_t *self)
{
    return self->dim;
}


//  --------------------------------------------------------------------------
//  Does the index hold this label (live)?

bool
lh_hnsw_has (lh_hnsw_t *self, uint64_t label)
{
    pthread_rwlock_rdlock (&self->lock);
    bool live = s_live (self->graph, label);
    pthread_rwlock_unlock (&self->lock);
    return live;
}


//  --------------------------------------------------------------------------
//  Memory held by hnswlib's structures, estimated from their sizes

size_t
lh_hnsw_memory (lh_hnsw_t *self)
{
    pthread_rwlock_rdlock (&self->lock);
    s_graph_t *graph = self->graph;
    size_t count = graph->cur_element_count;
    size_t bytes = count * graph->size_data_per_element_;
    for (size_t index = 0; index < count; index++)
        if (graph->element_levels_ [index] > 0)
            bytes += graph->size_links_per_element_ * graph->element_levels_ [index] + 16;
    //  per slot: a mutex, a level, a link-list pointer; per label: a map node
    bytes += graph->max_elements_ * (sizeof (std::mutex) + sizeof (int) + sizeof (void *));
    bytes += count * 32 + graph->label_lookup_.bucket_count () * sizeof (void *);
    //  one visited list (2 bytes a slot) per concurrent search, 2 assumed
    bytes += graph->max_elements_ * sizeof (hnswlib::vl_type) * 2;
    pthread_rwlock_unlock (&self->lock);
    return bytes;
}


//  --------------------------------------------------------------------------
//  Rebuild without tombstones (exclusive)

int
lh_hnsw_compact (lh_hnsw_t *self)
{
    int rc = 0;
    pthread_rwlock_wrlock (&self->lock);
    s_graph_t *graph = self->graph;
    s_graph_t *fresh = NULL;
    try {
        size_t live = s_live_count (graph);
        fresh = new s_graph_t (self->space, std::max ((size_t) S_CAPACITY_MIN, live + live / 4),
                               self->m? self->m: graph->M_,
                               self->ef_construction? self->ef_construction: graph->ef_construction_);
        for (hnswlib::tableint id = 0; id < graph->cur_element_count; id++) {
            if (!graph->isMarkedDeleted (id))
                fresh->addPoint (graph->getDataByInternalId (id), graph->getExternalLabel (id));
            if (id % S_KEEPALIVE == S_KEEPALIVE - 1)
                lh_keepalive ();
        }
        delete graph;
        self->graph = fresh;
    }
    catch (...) {
        delete fresh;
        rc = -1;
    }
    pthread_rwlock_unlock (&self->lock);
    return rc;
}


//  --------------------------------------------------------------------------
//  Write the graph to a file

int
lh_hnsw_save (lh_hnsw_t *self, const char *path)
{
    int rc = 0;
    pthread_rwlock_rdlock (&self->lock);
    try {
        self->graph->saveIndex (path);
    }
    catch (...) {
        rc = -1;
    }
    pthread_rwlock_unlock (&self->lock);
    struct stat info;
    if (rc == 0 && stat (path, &info) != 0)
        rc = -1;
    return rc;
}


//  --------------------------------------------------------------------------
//  Check a saved graph's header against the file size before hnswlib
//  reads it: hnswlib trusts its input

static int
s_header_check (const char *path, size_t dim)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return -1;
    struct stat info;
    size_t fields [6];
    int rc = -1;
    //  offsetLevel0, max_elements, cur_element_count, size_data_per_element,
    //  label_offset, offsetData: six size_t values first
    if (fstat (fileno (file), &info) == 0
    &&  fread (fields, sizeof (size_t), 6, file) == 6) {
        size_t count = fields [2], per_element = fields [3];
        size_t data_offset = fields [5], label_offset = fields [4];
        if (per_element > dim * sizeof (float)
        &&  per_element < dim * sizeof (float) + 65536
        &&  label_offset == data_offset + dim * sizeof (float)
        &&  count <= (size_t) info.st_size / per_element)
            rc = 0;
    }
    fclose (file);
    return rc;
}


//  --------------------------------------------------------------------------
//  Load a graph written by lh_hnsw_save

lh_hnsw_t *
lh_hnsw_load (const char *path, size_t dim, lh_metric_t metric, size_t ef)
{
    if (dim == 0 || s_header_check (path, dim))
        return NULL;
    lh_hnsw_t *self = s_shell_new (dim, metric, ef);
    if (!self)
        return NULL;
    try {
        self->graph = new s_graph_t (self->space, std::string (path), false, 0);
        self->m = self->graph->M_;
        self->ef_construction = self->graph->ef_construction_;
        //  hnswlib 0.6.2's loading constructor never zeroes num_deleted_
        //  before counting the tombstones into it: count them again
        self->graph->num_deleted_ = 0;
        for (size_t id = 0; id < self->graph->cur_element_count; id++)
            if (self->graph->isMarkedDeleted ((hnswlib::tableint) id))
                self->graph->num_deleted_++;
        if (self->graph->data_size_ != dim * sizeof (float)) {
            delete self->graph;
            self->graph = NULL;
        }
    }
    catch (...) {
        self->graph = NULL;
    }
    if (!self->graph)
        lh_hnsw_destroy (&self);
    return self;
}


//  --------------------------------------------------------------------------
//  Call fn for every live label

void
lh_hnsw_each (lh_hnsw_t *self, void (*fn) (uint64_t label, void *arg), void *arg)
{
    pthread_rwlock_rdlock (&self->lock);
    s_graph_t *graph = self->graph;
    for (hnswlib::tableint id = 0; id < graph->cur_element_count; id++)
        if (!graph->isMarkedDeleted (id))
            fn (graph->getExternalLabel (id), arg);
    pthread_rwlock_unlock (&self->lock);
}


//  --------------------------------------------------------------------------
//  Self test: small and edge cases (the 20k recall and the concurrency
//  runs are in tests/bin/lh_vector_harness, driven by test_vectord_hnsw.py)

static bool
s_test_even (uint64_t label, void *arg)
{
    return label % 2 == 0;
}

static bool
s_test_rare (uint64_t label, void *arg)
{
    return label == *(uint64_t *) arg;
}

extern "C" void
lh_hnsw_test (bool verbose);

void
lh_hnsw_test (bool verbose)
{
    printf (" * lh_hnsw: ");
    //  Metric names
    lh_metric_t metric;
    assert (lh_metric_parse ("cosine", 6, &metric) == 0 && metric == LH_METRIC_COSINE);
    assert (lh_metric_parse ("l2", 2, &metric) == 0 && metric == LH_METRIC_L2);
    assert (lh_metric_parse ("ip", 2, &metric) == 0 && metric == LH_METRIC_IP);
    assert (lh_metric_parse ("dot", 3, &metric) == -1);
    assert (strcmp (lh_metric_name (LH_METRIC_IP), "ip") == 0);

    //  Vector checks
    float good [3] = { 1, 0, 0 }, zero [3] = { 0, 0, 0 };
    float bad [3] = { 1, NAN, 0 }, inf [3] = { INFINITY, 0, 0 };
    assert (lh_hnsw_vector_check (good, 3, LH_METRIC_COSINE) == 0);
    assert (lh_hnsw_vector_check (zero, 3, LH_METRIC_COSINE) == -2);
    assert (lh_hnsw_vector_check (zero, 3, LH_METRIC_L2) == 0);
    assert (lh_hnsw_vector_check (bad, 3, LH_METRIC_L2) == -1);
    assert (lh_hnsw_vector_check (inf, 3, LH_METRIC_IP) == -1);
    assert (lh_hnsw_new (0, LH_METRIC_L2, 16, 200, 64) == NULL);

    //  The SIMD kernels (when this CPU has them) against plain sums, over
    //  every tail length (an index's creation picks them)
    lh_hnsw_t *first = lh_hnsw_new (4, LH_METRIC_L2, 16, 200, 64);
    assert (first);
    lh_hnsw_destroy (&first);
    std::vector<float> left (800), right (800);
    for (size_t index = 0; index < 800; index++) {
        left [index] = (float) ((index * 7919) % 113) / 50.0f - 1.1f;
        right [index] = (float) ((index * 104729) % 97) / 40.0f - 1.2f;
    }
    size_t dims [] = { 1, 3, 8, 15, 16, 17, 31, 32, 33, 47, 64, 127, 128, 384, 768, 775 };
    for (size_t dim : dims) {
        double dot = 0, l2 = 0;
        for (size_t index = 0; index < dim; index++) {
            dot += (double) left [index] * right [index];
            l2 += ((double) left [index] - right [index]) * ((double) left [index] - right [index]);
        }
        if (s_dot_kernel)
            assert (fabs (s_dot_kernel (left.data (), right.data (), dim) - dot) < 1e-3 * (1 + fabs (dot)));
        if (s_l2_kernel)
            assert (fabs (s_l2_kernel (left.data (), right.data (), dim) - l2) < 1e-3 * (1 + l2));
    }
    if (verbose)
        printf ("\n    distance kernels: %s", !s_dot_kernel? "hnswlib's":
#if defined (__x86_64__)
                s_dot_kernel == s_dot_avx512? "AVX-512":
#endif
                "AVX2+FMA");

    //  Empty, 1 and 2 elements, with writes in between
    lh_hnsw_t *index = lh_hnsw_new (3, LH_METRIC_COSINE, 16, 100, 32);
    assert (index);
    lh_hit_t hits [64];
    assert (lh_hnsw_search (index, good, 5, 0, NULL, NULL, 0, hits) == 0);
    uint64_t label = 1;
    assert (lh_hnsw_add (index, &label, good, 1) == 0);
    assert (lh_hnsw_search (index, good, 5, 0, NULL, NULL, 0, hits) == 1);
    assert (hits [0].label == 1 && fabsf (hits [0].distance) < 1e-6);
    float other [3] = { 0, 2, 0 };
    label = 2;
    assert (lh_hnsw_add (index, &label, other, 1) == 0);
    assert (lh_hnsw_search (index, other, 5, 0, NULL, NULL, 0, hits) == 2);
    assert (hits [0].label == 2 && hits [1].label == 1);
    assert (fabsf (hits [1].distance - 1.0f) < 1e-5);
    label = 1;
    assert (lh_hnsw_remove (index, &label, 1) == 1);
    assert (lh_hnsw_remove (index, &label, 1) == 0);
    assert (lh_hnsw_search (index, good, 5, 0, NULL, NULL, 0, hits) == 1 && hits [0].label == 2);
    label = 2;
    assert (lh_hnsw_remove (index, &label, 1) == 1);
    assert (lh_hnsw_search (index, good, 5, 0, NULL, NULL, 0, hits) == 0);
    assert (lh_hnsw_size (index) == 0 && lh_hnsw_deleted (index) == 2);
    label = 3;
    assert (lh_hnsw_add (index, &label, good, 1) == 0);
    assert (lh_hnsw_search (index, good, 5, 0, NULL, NULL, 0, hits) == 1 && hits [0].label == 3);
    assert (lh_hnsw_compact (index) == 0);
    assert (lh_hnsw_size (index) == 1 && lh_hnsw_deleted (index) == 0);
    assert (lh_hnsw_has (index, 3) && !lh_hnsw_has (index, 1));
    lh_hnsw_destroy (&index);
    assert (index == NULL);

    //  500 vectors in 8 dims, l2: graph path, filters, save / load
    const size_t count = 500, dim = 8;
    std::vector<float> data (count * dim);
    std::vector<uint64_t> labels (count);
    unsigned seed = 7;
    for (size_t i = 0; i < count * dim; i++)
        data [i] = (float) (rand_r (&seed) % 1000) / 100.0f;
    for (size_t i = 0; i < count; i++)
        labels [i] = i + 100;
    index = lh_hnsw_new (dim, LH_METRIC_L2, 8, 64, 64);
    assert (lh_hnsw_add (index, labels.data (), data.data (), count) == 0);
    assert (lh_hnsw_size (index) == count);
    size_t found = lh_hnsw_search (index, &data [10 * dim], 10, 0, NULL, NULL, 0, hits);
    assert (found == 10 && hits [0].label == 110 && hits [0].distance < 1e-6);
    for (size_t i = 1; i < found; i++)
        assert (hits [i].distance >= hits [i - 1].distance);
    //  Filter keeps half: still 10 results, all even
    found = lh_hnsw_search (index, &data [11 * dim], 10, 0, s_test_even, NULL, 0, hits);
    assert (found == 10);
    for (size_t i = 0; i < found; i++)
        assert (hits [i].label % 2 == 0);
    //  Very selective filter: the one label is found by the scan
    uint64_t wanted = 499 + 100;
    found = lh_hnsw_search (index, &data [0], 10, 0, s_test_rare, &wanted, 0, hits);
    assert (found == 1 && hits [0].label == wanted);
    //  Tombstones, then compaction keeps the answers
    assert (lh_hnsw_remove (index, labels.data (), 250) == 250);
    found = lh_hnsw_search (index, &data [300 * dim], 10, 0, NULL, NULL, 0, hits);
    assert (found == 10 && hits [0].label == 400);
    for (size_t i = 0; i < found; i++)
        assert (hits [i].label >= 350);
    assert (lh_hnsw_compact (index) == 0);
    found = lh_hnsw_search (index, &data [300 * dim], 10, 0, NULL, NULL, 0, hits);
    assert (found == 10 && hits [0].label == 400);
    char path [] = "/tmp/lh_hnsw_test.XXXXXX";
    int fd = mkstemp (path);
    assert (fd >= 0);
    close (fd);
    assert (lh_hnsw_save (index, path) == 0);
    lh_hnsw_t *loaded = lh_hnsw_load (path, dim, LH_METRIC_L2, 64);
    assert (loaded && lh_hnsw_size (loaded) == 250);
    found = lh_hnsw_search (loaded, &data [300 * dim], 10, 0, NULL, NULL, 0, hits);
    assert (found == 10 && hits [0].label == 400);
    assert (lh_hnsw_load (path, dim + 1, LH_METRIC_L2, 64) == NULL);
    lh_hnsw_destroy (&loaded);
    //  A truncated file is refused, never crashes
    assert (truncate (path, 100) == 0);
    assert (lh_hnsw_load (path, dim, LH_METRIC_L2, 64) == NULL);
    FILE *file = fopen (path, "wb");
    assert (file);
    fputs ("garbage", file);
    fclose (file);
    assert (lh_hnsw_load (path, dim, LH_METRIC_L2, 64) == NULL);
    unlink (path);
    assert (lh_hnsw_memory (index) > 250 * dim * sizeof (float));
    lh_hnsw_destroy (&index);
    printf ("OK\n");
}
