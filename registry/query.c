/*
 * Secondary indexes over the device certificates, and the filtered, paged
 * lists answered from them (reg_query).
 *
 * A row is one registration (one DEV_ADD record), numbered in log order.
 * Rows are never renumbered: a deleted registration keeps its row, marked
 * dead, as the file keeps its records. Everything a filter looks at except
 * the status and the bound client ID is fixed for a registration's life
 * (issuer, serial, names, validity), so:
 *   rows[]     the DEV_ADD offset, not-before, not-after, issuer, status;
 *   bits[s]    a bitmap of the rows per status ([0]: every live row), with
 *              exact counts;
 *   cas[]      per issuer, its rows in order (an issuer is found by hash);
 *   idx[x]     per field (not-before, not-after, CN, O, OU), the rows sorted
 *              by it: a large sorted array plus a small sorted tail that new
 *              rows go into, merged into the array when it passes 1/32 of it.
 * The status bitmaps are exact; the issuer lists and sorted indexes keep
 * dead rows, which the check of every candidate drops: totals are exact.
 *
 * A query takes the filter whose index yields the fewest candidates (an ID
 * or a serial: hash lookups in the registry's own indexes; a status: its
 * count; an issuer: its list; a text or a validity range: the size of its
 * range, by binary search), walks those candidates in row order and checks
 * the other filters on each: status, issuer and validity from the row, a
 * text from a bitmap of its range (when that costs at most 16 times the
 * candidates) or else from the record, and the rest from the record. The
 * cost is O(candidates + rows / 64): never a walk over the records.
 *
 * Building. At open the rows, bitmaps and issuer lists are filled as the
 * records are read (constant time per record, from the read buffer), and
 * each sorted index gets its entries unsorted. The first query that needs
 * an index sorts it (or reg_query_build()): a radix sort on the time, or on
 * the text 8 bytes at a time, so records are read again only for texts that
 * share their first 8 bytes.
 *
 * Threads: the writer only (the registrar), like every write. Nothing here
 * is shared with the _mt readers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "registry/query-int.h"
#include "registry/query.h"

enum { QX_NB, QX_NA, QX_CN, QX_O, QX_OU, QX_N };

struct qrow {
	uint64_t base;          /* the DEV_ADD record */
	int64_t nb, na;
	uint32_t ca;            /* index into cas[] */
	uint8_t status;         /* 0 = deleted */
	uint8_t pad[3];
};

struct qent {
	uint64_t key;           /* a time with its sign bit flipped, or a text's
				 * first 8 bytes, big-endian, zero-padded */
	uint32_t row;
	uint32_t pad;
};

struct qidx {
	struct qent *m;         /* sorted once `sorted` */
	size_t nm, capm;
	struct qent *t;         /* sorted tail of recent rows */
	size_t nt, capt;
	bool sorted;
};

struct qca {
	uint8_t id[REG_ID_LEN];
	uint32_t *rows;
	size_t n, cap;
};

struct regq {
	struct qrow *rows;
	size_t n, cap;                          /* cap: a multiple of 64 */
	uint64_t *bits[REG_STATUS_COUNT];       /* cap / 64 words each */
	uint64_t count[REG_STATUS_COUNT];
	struct qca *cas;
	size_t ncas, capcas;
	uint32_t *cahash;                       /* ca index + 1; 0 = empty */
	size_t camask;
	struct qidx idx[QX_N];
};

#define HUGE_MIN (UINT64_C(4) << 20)

/* Ask for transparent huge pages on the whole 2 MiB pages of a large
 * block: filling the indexes at open is then not a page fault per 4 KiB. */
static void huge(void *p, size_t len)
{
	uintptr_t a = ((uintptr_t)p + (UINT64_C(2) << 20) - 1) & ~(uintptr_t)((UINT64_C(2) << 20) - 1);
	uintptr_t e = ((uintptr_t)p + len) & ~(uintptr_t)((UINT64_C(2) << 20) - 1);

	if (e > a)
		madvise((void *)a, e - a, MADV_HUGEPAGE);
}

/* Grow *p (of *cap elements of size elem) to hold need. 0 or -ENOMEM. */
static int ensure(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 16;
	void *m;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	m = realloc(*p, n * elem);
	if (!m)
		return -ENOMEM;
	if (n * elem >= HUGE_MIN)
		huge(m, n * elem);
	*p = m;
	*cap = n;
	return 0;
}

#define ENSURE(p, cap, need) ensure((void **)&(p), &(cap), (need), sizeof(*(p)))

struct regq *regq_new(uint64_t hint)
{
	struct regq *q = calloc(1, sizeof(struct regq));

	if (!q)
		return NULL;
	/* size everything once for the registrations the file holds */
	if (hint > 1024 && hint < UINT32_MAX) {
		size_t cap = (size_t)(hint + 63) / 64 * 64;
		int rc = 0;
		q->rows = malloc(cap * sizeof(*q->rows));
		rc = q->rows ? 0 : -ENOMEM;
		for (int s = 0; s < REG_STATUS_COUNT && !rc; s++)
			if (!(q->bits[s] = calloc(cap / 64, sizeof(uint64_t))))
				rc = -ENOMEM;
		if (!rc) {
			q->cap = cap;
			huge(q->rows, cap * sizeof(*q->rows));
		}
		for (int x = 0; x < QX_N && !rc; x++)
			rc = ENSURE(q->idx[x].m, q->idx[x].capm, (size_t)hint);
		if (rc) {
			regq_free(q);
			return NULL;
		}
	}
	return q;
}

void regq_free(struct regq *q)
{
	if (!q)
		return;
	free(q->rows);
	for (int s = 0; s < REG_STATUS_COUNT; s++)
		free(q->bits[s]);
	for (size_t i = 0; i < q->ncas; i++)
		free(q->cas[i].rows);
	free(q->cas);
	free(q->cahash);
	for (int x = 0; x < QX_N; x++) {
		free(q->idx[x].m);
		free(q->idx[x].t);
	}
	free(q);
}

size_t reg_query_mem(const struct registry *r)
{
	const struct regq *q = r->q;
	size_t b = sizeof(*q) + q->cap * sizeof(struct qrow) +
		   REG_STATUS_COUNT * q->cap / 8 + q->capcas * sizeof(struct qca) +
		   (q->camask + 1) * sizeof(uint32_t);

	for (size_t i = 0; i < q->ncas; i++)
		b += q->cas[i].cap * sizeof(uint32_t);
	for (int x = 0; x < QX_N; x++)
		b += (q->idx[x].capm + q->idx[x].capt) * sizeof(struct qent);
	return b;
}

/* ---- keys ------------------------------------------------------------------ */

static uint64_t time_key(int64_t t)
{
	return (uint64_t)t ^ (UINT64_C(1) << 63);
}

/* Bytes [8 * depth, 8 * depth + 8) of a text, big-endian, zero-padded: in
 * the order of the texts, as texts hold no NUL. */
static uint64_t text_key(const char *s, size_t len, int depth)
{
	uint64_t k = 0;

	for (size_t i = (size_t)depth * 8; i < (size_t)depth * 8 + 8; i++)
		k = k << 8 | (i < len ? (uint8_t)s[i] : 0);
	return k;
}

/* The CN, O or OU of the registration whose DEV_ADD is at base. */
static const char *row_text(const struct registry *r, uint64_t base, int x,
			    size_t *len)
{
	const struct regf_dev_add *a = regf_body(regf_at(r, base));
	const char *p = (const char *)(a + 1) + a->serial_len;

	if (x == QX_CN) {
		*len = a->cn_len;
		return p;
	}
	p += a->cn_len + 1;
	if (x == QX_O) {
		*len = a->o_len;
		return p;
	}
	*len = a->ou_len;
	return p + a->o_len + 1;
}

static int text_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	return c ? c : (al > bl) - (al < bl);
}

/* Order of two entries of index x. */
static int ent_cmp(const struct registry *r, int x, const struct qent *a,
		   const struct qent *b)
{
	const struct regq *q = r->q;
	const char *as, *bs;
	size_t al, bl;

	if (a->key != b->key)
		return a->key < b->key ? -1 : 1;
	if (x < QX_CN || !(a->key & 0xff))
		return 0;       /* equal times, or equal texts shorter than 8 */
	as = row_text(r, q->rows[a->row].base, x, &al);
	bs = row_text(r, q->rows[b->row].base, x, &bl);
	return text_cmp(as, al, bs, bl);
}

/* ---- sorting --------------------------------------------------------------- */

static int key_cmp(const void *x, const void *y)
{
	const struct qent *a = x, *b = y;

	return (a->key > b->key) - (a->key < b->key);
}

/* LSD radix sort by key, a byte at a time, skipping the bytes that are the
 * same in every entry (most of a time's). tmp holds n entries. */
static void radix(struct qent *v, size_t n, struct qent *tmp)
{
	struct qent *src = v, *dst = tmp;
	size_t cnt[256];

	if (n < 256) {
		if (n > 1)      /* v may be NULL when n == 0 */
			qsort(v, n, sizeof(*v), key_cmp);
		return;
	}
	for (int sh = 0; sh < 64; sh += 8) {
		memset(cnt, 0, sizeof cnt);
		for (size_t i = 0; i < n; i++)
			cnt[(src[i].key >> sh) & 0xff]++;
		if (cnt[(src[0].key >> sh) & 0xff] == n)
			continue;
		for (size_t i = 0, sum = 0; i < 256; i++) {
			size_t c = cnt[i];
			cnt[i] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			dst[cnt[(src[i].key >> sh) & 0xff]++] = src[i];
		struct qent *s = src;
		src = dst;
		dst = s;
	}
	if (src != v)
		memcpy(v, src, n * sizeof(*v));
}

/* Sort entries of text index x whose keys hold bytes [8 * depth, +8):
 * by key, then each run of equal keys that may go on by the next 8 bytes,
 * read from the records. Keys are left as they came in. */
static void text_sort(const struct registry *r, int x, struct qent *v,
		      size_t n, struct qent *tmp, int depth)
{
	radix(v, n, tmp);
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && v[j].key == v[i].key; j++)
			;
		if (j - i < 2 || !(v[i].key & 0xff) || depth + 1 >= REG_NAME_MAX / 8)
			continue;
		uint64_t k = v[i].key;
		for (size_t m = i; m < j; m++) {
			size_t len;
			const char *s = row_text(r, r->q->rows[v[m].row].base, x, &len);
			v[m].key = text_key(s, len, depth + 1);
		}
		text_sort(r, x, v + i, j - i, tmp, depth + 1);
		for (size_t m = i; m < j; m++)
			v[m].key = k;
	}
}

/* Sort index x if it is still as the open left it. 0 or -ENOMEM. */
static int idx_sort(struct registry *r, int x)
{
	struct qidx *ix = &r->q->idx[x];
	struct qent *tmp;

	if (ix->sorted)
		return 0;
	tmp = malloc((ix->nm ? ix->nm : 1) * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	if (x < QX_CN)
		radix(ix->m, ix->nm, tmp);
	else
		text_sort(r, x, ix->m, ix->nm, tmp, 0);
	free(tmp);
	ix->sorted = true;
	return 0;
}

/* Merge the tail into the sorted array. 0 or -ENOMEM (nothing changed). */
static int idx_merge(struct registry *r, int x)
{
	struct qidx *ix = &r->q->idx[x];
	size_t n = ix->nm + ix->nt, i = 0, j = 0, k = 0;
	struct qent *m = malloc(n * sizeof(*m));

	if (!m)
		return -ENOMEM;
	while (i < ix->nm && j < ix->nt)
		m[k++] = ent_cmp(r, x, &ix->t[j], &ix->m[i]) < 0 ? ix->t[j++] : ix->m[i++];
	while (i < ix->nm)
		m[k++] = ix->m[i++];
	while (j < ix->nt)
		m[k++] = ix->t[j++];
	free(ix->m);
	ix->m = m;
	ix->nm = ix->capm = n;
	ix->nt = 0;
	return 0;
}

/* ---- maintenance (the registry's write path) ------------------------------ */

static uint64_t ca_hash(const uint8_t *id)
{
	uint64_t h;

	memcpy(&h, id, sizeof h);       /* a SHA-256 is hash enough */
	return h;
}

static long ca_find(const struct regq *q, const uint8_t *id)
{
	if (!q->cahash)
		return -1;
	for (size_t i = ca_hash(id) & q->camask;; i = (i + 1) & q->camask) {
		uint32_t v = q->cahash[i];
		if (!v)
			return -1;
		if (!memcmp(q->cas[v - 1].id, id, REG_ID_LEN))
			return (long)v - 1;
	}
}

static void ca_put(uint32_t *tab, size_t mask, const uint8_t *id, uint32_t v)
{
	size_t i = ca_hash(id) & mask;

	while (tab[i])
		i = (i + 1) & mask;
	tab[i] = v;
}

/* The issuer's number, adding it (with room for one row) if new. */
static long ca_reserve(struct regq *q, const uint8_t *id)
{
	long c = ca_find(q, id);

	if (c < 0) {
		if (ENSURE(q->cas, q->capcas, q->ncas + 1))
			return -ENOMEM;
		if (!q->cahash || (q->ncas + 1) * 2 > q->camask + 1) {
			size_t size = q->cahash ? (q->camask + 1) * 2 : 64;
			uint32_t *t = calloc(size, sizeof(*t));
			if (!t)
				return -ENOMEM;
			for (size_t i = 0; i < q->ncas; i++)
				ca_put(t, size - 1, q->cas[i].id, (uint32_t)i + 1);
			free(q->cahash);
			q->cahash = t;
			q->camask = size - 1;
		}
		c = (long)q->ncas++;
		memset(&q->cas[c], 0, sizeof(q->cas[c]));
		memcpy(q->cas[c].id, id, REG_ID_LEN);
		ca_put(q->cahash, q->camask, id, (uint32_t)c + 1);
	}
	if (ENSURE(q->cas[c].rows, q->cas[c].cap, q->cas[c].n + 1))
		return -ENOMEM;
	return c;
}

static int rows_reserve(struct regq *q)
{
	size_t cap = q->cap ? q->cap * 2 : 1024;

	if (q->n < q->cap)
		return 0;
	if (q->n >= UINT32_MAX)
		return -ENOMEM;         /* rows are 32-bit */
	struct qrow *rows = realloc(q->rows, cap * sizeof(*rows));
	if (!rows)
		return -ENOMEM;
	if (cap * sizeof(*rows) >= HUGE_MIN)
		huge(rows, cap * sizeof(*rows));
	q->rows = rows;
	for (int s = 0; s < REG_STATUS_COUNT; s++) {
		uint64_t *b = realloc(q->bits[s], cap / 8);
		if (!b)
			return -ENOMEM; /* the larger blocks so far are harmless */
		if (cap / 8 >= HUGE_MIN)
			huge(b, cap / 8);
		memset(b + q->cap / 64, 0, (cap - q->cap) / 8);
		q->bits[s] = b;
	}
	q->cap = cap;
	return 0;
}

static int idx_reserve(struct registry *r, int x)
{
	struct qidx *ix = &r->q->idx[x];

	if (!ix->sorted)
		return ENSURE(ix->m, ix->capm, ix->nm + 1);
	if (ix->nt >= 4096 + ix->nm / 32 && idx_merge(r, x))
		return -ENOMEM;
	return ENSURE(ix->t, ix->capt, ix->nt + 1);
}

int regq_reserve(struct registry *r, const struct regf_view *v)
{
	struct regq *q = r->q;

	if (v->h->type != REGF_DEV_ADD)
		return 0;
	if (rows_reserve(q) ||
	    ca_reserve(q, ((const struct regf_dev_add *)v->body)->issuer) < 0)
		return -ENOMEM;
	for (int x = 0; x < QX_N; x++)
		if (idx_reserve(r, x))
			return -ENOMEM;
	return 0;
}

static void idx_put(struct registry *r, int x, uint64_t key, uint32_t row)
{
	struct qidx *ix = &r->q->idx[x];
	struct qent e = { key, row, 0 };
	size_t lo = 0, hi = ix->nt;

	if (!ix->sorted) {
		ix->m[ix->nm++] = e;
		return;
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ent_cmp(r, x, &ix->t[mid], &e) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(ix->t + lo + 1, ix->t + lo, (ix->nt - lo) * sizeof(e));
	ix->t[lo] = e;
	ix->nt++;
}

static void bit_set(uint64_t *b, size_t i)
{
	b[i / 64] |= UINT64_C(1) << (i % 64);
}

static void bit_clear(uint64_t *b, size_t i)
{
	b[i / 64] &= ~(UINT64_C(1) << (i % 64));
}

static bool bit_test(const uint64_t *b, size_t i)
{
	return b[i / 64] >> (i % 64) & 1;
}

static void set_status(struct regq *q, size_t row, int s)
{
	int old = q->rows[row].status;

	if (old) {
		bit_clear(q->bits[old], row);
		q->count[old]--;
	}
	if (s) {
		bit_set(q->bits[s], row);
		q->count[s]++;
	}
	if (!old != !s) {
		if (s)
			bit_set(q->bits[0], row);
		else
			bit_clear(q->bits[0], row);
		q->count[0] += s ? 1 : -1;
	}
	q->rows[row].status = (uint8_t)s;
}

/* The row of the registration whose DEV_ADD is at base, or -1. */
static long row_of(const struct regq *q, uint64_t base)
{
	size_t lo = 0, hi = q->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (q->rows[mid].base < base)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < q->n && q->rows[lo].base == base ? (long)lo : -1;
}

void regq_apply(struct registry *r, const struct regf_view *v, uint64_t off)
{
	struct regq *q = r->q;
	long row;

	switch (v->h->type) {
	case REGF_DEV_ADD: {
		const struct regf_dev_add *a = v->body;
		long c = ca_find(q, a->issuer);
		uint32_t n = (uint32_t)q->n++;

		q->rows[n] = (struct qrow){ .base = off, .nb = a->not_before,
					    .na = a->not_after, .ca = (uint32_t)c };
		set_status(q, n, a->status);
		q->cas[c].rows[q->cas[c].n++] = n;
		idx_put(r, QX_NB, time_key(a->not_before), n);
		idx_put(r, QX_NA, time_key(a->not_after), n);
		idx_put(r, QX_CN, text_key(v->cn, v->cn_len, 0), n);
		idx_put(r, QX_O, text_key(v->o, v->o_len, 0), n);
		idx_put(r, QX_OU, text_key(v->ou, v->ou_len, 0), n);
		break;
	}
	case REGF_DEV_STATE: {
		const struct regf_dev_state *s = v->body;
		if ((row = row_of(q, s->base)) >= 0)
			set_status(q, (size_t)row, s->status);
		break;
	}
	case REGF_DEV_DELETE: {
		const struct regf_dev_delete *d = v->body;
		if ((row = row_of(q, d->base)) >= 0)
			set_status(q, (size_t)row, 0);
		break;
	}
	}
}

/* ---- queries --------------------------------------------------------------- */

void reg_query_init(struct reg_query *q)
{
	memset(q, 0, sizeof(*q));
	q->nb_from = q->na_from = INT64_MIN;
	q->nb_to = q->na_to = INT64_MAX;
	q->limit = 100;
}

int reg_query_build(struct registry *r)
{
	for (int x = 0; x < QX_N; x++)
		if (idx_sort(r, x))
			return -ENOMEM;
	return 0;
}

/* Where the candidates come from. */
enum src { S_ID, S_SERIAL, S_CA, S_STATUS, S_CN, S_O, S_OU, S_NB, S_NA, S_ALL };

/* A range of a sorted index: [mlo, mhi) of the array, [tlo, thi) of the tail. */
struct qrange {
	size_t mlo, mhi, tlo, thi;
};

struct run {
	struct registry *r;
	const struct regq *q;
	const struct reg_query *f;
	const struct reg_qtext *text[3];        /* per text index, NULL = none */
	struct qrange range[QX_N];
	bool has[QX_N];
	uint64_t *tbits[3];                     /* a text filter's range as a bitmap */
	bool *ca_ok;                            /* per issuer, when filtering by CA */
	long one_ca;                            /* the only issuer wanted, or -1 */
	int src;                                /* enum src */
	uint64_t total, seen;
	uint32_t *page;
	size_t npage, cappage;
	bool nomem;
};

/* Whether the entry e of index x comes before the bound (a time, or a text
 * with a mode: 0 lower bound, 1 upper exact, 2 upper prefix). */
struct qbound {
	uint64_t key;
	const struct reg_qtext *t;
	int mode;
};

static bool before(const struct run *u, int x, const struct qent *e,
		   const struct qbound *b)
{
	size_t len;
	const char *s;

	if (x < QX_CN)
		return b->mode ? e->key <= b->key : e->key < b->key;
	s = row_text(u->r, u->q->rows[e->row].base, x, &len);
	if (b->mode == 2 && len > b->t->len)
		len = b->t->len;
	int c = text_cmp(s, len, b->t->s, b->t->len);
	return b->mode ? c <= 0 : c < 0;
}

static size_t bound(const struct run *u, int x, const struct qent *v, size_t n,
		    const struct qbound *b)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (before(u, x, &v[mid], b))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static size_t range_size(const struct qrange *g)
{
	return (g->mhi - g->mlo) + (g->thi - g->tlo);
}

static void find_range(struct run *u, int x, struct qbound lo, struct qbound hi)
{
	const struct qidx *ix = &u->q->idx[x];
	struct qrange *g = &u->range[x];

	g->mlo = bound(u, x, ix->m, ix->nm, &lo);
	g->mhi = bound(u, x, ix->m, ix->nm, &hi);
	g->tlo = bound(u, x, ix->t, ix->nt, &lo);
	g->thi = bound(u, x, ix->t, ix->nt, &hi);
	if (g->mhi < g->mlo)
		g->mhi = g->mlo;
	if (g->thi < g->tlo)
		g->thi = g->tlo;
	u->has[x] = true;
}

static void mark_range(const struct run *u, int x, uint64_t *bits)
{
	const struct qidx *ix = &u->q->idx[x];
	const struct qrange *g = &u->range[x];

	for (size_t i = g->mlo; i < g->mhi; i++)
		bit_set(bits, ix->m[i].row);
	for (size_t i = g->tlo; i < g->thi; i++)
		bit_set(bits, ix->t[i].row);
}

static const struct regf_dev_add *row_add(const struct run *u, uint32_t row)
{
	return regf_body(regf_at(u->r, u->q->rows[row].base));
}

/* The newest record (writer's view) of a live registration's ID. */
static uint64_t dev_last(const struct registry *r, const uint8_t *id)
{
	struct regx_key k = { .id = id };

	return regx_find(r, REGX_DEV, &k, regx_hash(r, REGX_DEV, &k), NULL);
}

/* Whether row passes every filter but the one its candidates come from. */
static bool row_ok(const struct run *u, uint32_t row)
{
	const struct qrow *w = &u->q->rows[row];
	const struct reg_query *f = u->f;

	if (!w->status || (f->status && w->status != f->status))
		return false;
	if (w->nb < f->nb_from || w->nb > f->nb_to ||
	    w->na < f->na_from || w->na > f->na_to)
		return false;
	if (u->ca_ok && !u->ca_ok[w->ca])
		return false;
	for (int i = 0; i < 3; i++) {
		const struct reg_qtext *t = u->text[i];
		size_t len;
		if (!t || u->src == S_CN + i)
			continue;
		if (u->tbits[i]) {
			if (!bit_test(u->tbits[i], row))
				return false;
			continue;
		}
		const char *s = row_text(u->r, w->base, QX_CN + i, &len);
		if (t->prefix ? len < t->len || memcmp(s, t->s, t->len)
			      : text_cmp(s, len, t->s, t->len))
			return false;
	}
	if (f->id || f->serial || f->client_id) {
		const struct regf_dev_add *a = row_add(u, row);
		if (f->id && memcmp(a->id, f->id, REG_ID_LEN))
			return false;
		if (f->serial && (a->serial_len != f->serial_len ||
				  memcmp(a + 1, f->serial, f->serial_len)))
			return false;
		if (f->client_id) {
			struct reg_device d;
			if (regf_dev_snapshot(u->r, dev_last(u->r, a->id), &d) ||
			    strcmp(d.client_id, f->client_id))
				return false;
		}
	}
	return true;
}

static void take(struct run *u, uint32_t row)
{
	if (!row_ok(u, row))
		return;
	if (u->total >= u->f->offset && u->npage < u->f->limit) {
		if (ENSURE(u->page, u->cappage, u->npage + 1))
			u->nomem = true;
		else
			u->page[u->npage++] = row;
	}
	u->total++;
}

static void walk_bits(struct run *u, const uint64_t *b)
{
	size_t words = (u->q->n + 63) / 64;

	for (size_t w = 0; w < words; w++)
		for (uint64_t x = b[w]; x; x &= x - 1)
			take(u, (uint32_t)(w * 64 + (size_t)__builtin_ctzll(x)));
}

/* A status bitmap with no other filter: count words, visit only the page. */
static void walk_count(struct run *u, const uint64_t *b, uint64_t count)
{
	size_t words = (u->q->n + 63) / 64;
	uint64_t skip = u->f->offset;

	u->total = count;
	for (size_t w = 0; w < words && u->npage < u->f->limit; w++) {
		uint64_t x = b[w];
		uint64_t c = (uint64_t)__builtin_popcountll(x);
		if (skip >= c) {
			skip -= c;
			continue;
		}
		for (; x && u->npage < u->f->limit; x &= x - 1) {
			if (skip) {
				skip--;
				continue;
			}
			if (ENSURE(u->page, u->cappage, u->npage + 1)) {
				u->nomem = true;
				return;
			}
			u->page[u->npage++] = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(x));
		}
	}
}

static int u32_cmp(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;

	return (a > b) - (a < b);
}

/* Rows of a serial: one hash lookup per wanted issuer. */
static size_t serial_rows(const struct run *u, uint32_t *out)
{
	const struct regq *q = u->q;
	size_t n = 0;

	for (size_t c = 0; c < q->ncas; c++) {
		if (u->ca_ok && !u->ca_ok[c])
			continue;
		struct regx_key k = { q->cas[c].id, u->f->serial, u->f->serial_len };
		uint64_t s = regx_find(u->r, REGX_SER, &k, regx_hash(u->r, REGX_SER, &k), NULL);
		long row;
		if (s && regf_at(u->r, s)->type == REGF_DEV_ADD &&
		    (row = row_of(q, s)) >= 0)
			out[n++] = (uint32_t)row;
	}
	return n;
}

static long id_row(const struct run *u)
{
	uint64_t last = dev_last(u->r, u->f->id);

	if (!last || regf_is_delete(u->r, last))
		return -1;
	return row_of(u->q, regf_rec_base(u->r, last));
}

/* Pick the source with the fewest candidates; its size in *est. */
static void pick(struct run *u, uint64_t *est)
{
	const struct reg_query *f = u->f;
	const struct regq *q = u->q;
	uint64_t best = q->count[0];
	int s = S_ALL;

#define CONSIDER(src_, n_) do {				\
		uint64_t n__ = (n_);			\
		if (n__ < best) {			\
			best = n__;			\
			s = (src_);			\
		}					\
	} while (0)

	if (f->status)
		CONSIDER(S_STATUS, q->count[f->status]);
	if (u->ca_ok) {
		uint64_t n = 0;
		for (size_t c = 0; c < q->ncas; c++)
			if (u->ca_ok[c])
				n += q->cas[c].n;
		CONSIDER(S_CA, n);
	}
	for (int i = 0; i < 3; i++)
		if (u->text[i])
			CONSIDER(S_CN + i, range_size(&u->range[QX_CN + i]));
	if (u->has[QX_NB])
		CONSIDER(S_NB, range_size(&u->range[QX_NB]));
	if (u->has[QX_NA])
		CONSIDER(S_NA, range_size(&u->range[QX_NA]));
	if (f->serial)
		CONSIDER(S_SERIAL, q->ncas);
	if (f->id)
		CONSIDER(S_ID, 1);
#undef CONSIDER
	u->src = s;
	*est = best;
}

/* Prepare the CA, text and time filters. 0, 1 (nothing can match), -ENOMEM. */
static int prepare(struct run *u)
{
	const struct reg_query *f = u->f;
	const struct regq *q = u->q;

	u->one_ca = -1;
	if (f->by_ca) {
		size_t n = 0;
		u->ca_ok = calloc(q->ncas ? q->ncas : 1, sizeof(bool));
		if (!u->ca_ok)
			return -ENOMEM;
		for (size_t i = 0; i < f->n_ca; i++) {
			long c = ca_find(q, f->ca[i]);
			if (c >= 0 && !u->ca_ok[c]) {
				u->ca_ok[c] = true;
				u->one_ca = c;
				n++;
			}
		}
		if (!n)
			return 1;
		if (n > 1)
			u->one_ca = -1;
	}
	if (f->nb_from > f->nb_to || f->na_from > f->na_to)
		return 1;
	if (f->nb_from != INT64_MIN || f->nb_to != INT64_MAX) {
		if (idx_sort(u->r, QX_NB))
			return -ENOMEM;
		find_range(u, QX_NB, (struct qbound){ time_key(f->nb_from), NULL, 0 },
			   (struct qbound){ time_key(f->nb_to), NULL, 1 });
	}
	if (f->na_from != INT64_MIN || f->na_to != INT64_MAX) {
		if (idx_sort(u->r, QX_NA))
			return -ENOMEM;
		find_range(u, QX_NA, (struct qbound){ time_key(f->na_from), NULL, 0 },
			   (struct qbound){ time_key(f->na_to), NULL, 1 });
	}
	const struct reg_qtext *t[3] = { &f->cn, &f->o, &f->ou };
	for (int i = 0; i < 3; i++) {
		if (!t[i]->s)
			continue;
		u->text[i] = t[i];
		if (idx_sort(u->r, QX_CN + i))
			return -ENOMEM;
		find_range(u, QX_CN + i, (struct qbound){ 0, t[i], 0 },
			   (struct qbound){ 0, t[i], t[i]->prefix ? 2 : 1 });
	}
	return 0;
}

/* Walk the candidates of the chosen source, in row order. */
static int walk(struct run *u, uint64_t est)
{
	const struct regq *q = u->q;
	size_t words = (q->n + 63) / 64;
	uint64_t *mark = NULL;
	bool alone = !u->f->id && !u->f->serial && !u->f->client_id &&
		     !u->ca_ok && !u->text[0] && !u->text[1] && !u->text[2] &&
		     !u->has[QX_NB] && !u->has[QX_NA];

	/* Texts not driving: a bitmap of their range when that is cheap. */
	for (int i = 0; i < 3; i++) {
		size_t n = u->text[i] ? range_size(&u->range[QX_CN + i]) : 0;
		if (!u->text[i] || u->src == S_CN + i || n > 16 * est + 64)
			continue;
		if (!(u->tbits[i] = calloc(words ? words : 1, sizeof(uint64_t))))
			return -ENOMEM;
		mark_range(u, QX_CN + i, u->tbits[i]);
	}
	switch (u->src) {
	case S_ALL:
	case S_STATUS: {
		int s = u->src == S_ALL ? 0 : u->f->status;
		if (alone)
			walk_count(u, q->bits[s], q->count[s]);
		else
			walk_bits(u, q->bits[s]);
		return 0;
	}
	case S_ID: {
		long row = id_row(u);
		if (row >= 0)
			take(u, (uint32_t)row);
		return 0;
	}
	case S_SERIAL: {
		uint32_t *rows = malloc((q->ncas ? q->ncas : 1) * sizeof(*rows));
		if (!rows)
			return -ENOMEM;
		size_t n = serial_rows(u, rows);
		qsort(rows, n, sizeof(*rows), u32_cmp);
		for (size_t i = 0; i < n; i++)
			take(u, rows[i]);
		free(rows);
		return 0;
	}
	case S_CA:
		if (u->one_ca >= 0) {
			const struct qca *c = &q->cas[u->one_ca];
			for (size_t i = 0; i < c->n; i++)
				take(u, c->rows[i]);
			return 0;
		}
		break;
	default:
		break;
	}
	if (!(mark = calloc(words ? words : 1, sizeof(uint64_t))))
		return -ENOMEM;
	if (u->src == S_CA) {
		for (size_t c = 0; c < q->ncas; c++)
			for (size_t i = 0; u->ca_ok[c] && i < q->cas[c].n; i++)
				bit_set(mark, q->cas[c].rows[i]);
	} else {
		static const int x_of[] = { [S_CN] = QX_CN, [S_O] = QX_O, [S_OU] = QX_OU,
					    [S_NB] = QX_NB, [S_NA] = QX_NA };
		mark_range(u, x_of[u->src], mark);
	}
	walk_bits(u, mark);
	free(mark);
	return 0;
}

int reg_query(struct registry *r, const struct reg_query *f, uint64_t *total,
	      int (*fn)(void *ctx, const struct reg_device *d), void *ctx)
{
	struct run u = { .r = r, .q = r->q, .f = f };
	uint64_t est = 0;
	int rc;

	*total = 0;
	rc = prepare(&u);
	if (rc == 0) {
		pick(&u, &est);
		rc = walk(&u, est);
	}
	if (rc < 0 || u.nomem) {
		rc = -ENOMEM;
		goto out;
	}
	rc = 0;
	*total = u.total;
	for (size_t i = 0; i < u.npage && !rc; i++) {
		struct reg_device d;
		const struct regf_dev_add *a = row_add(&u, u.page[i]);
		if (regf_dev_snapshot(r, dev_last(r, a->id), &d) == 0)
			rc = fn(ctx, &d);
	}
out:
	for (int i = 0; i < 3; i++)
		free(u.tbits[i]);
	free(u.ca_ok);
	free(u.page);
	return rc;
}
