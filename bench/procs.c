/*
 * bench/procs.c - --procs K: connect, hold and signup in K worker
 * processes (one process has at most RLIMIT_NOFILE descriptors, so a big
 * hold needs several). Worker w gets connections w, w+K, ... of the run's
 * numbering (client IDs stay unique) and certificates w, w+K, ... of the
 * pool (signup: exactly those; connect/hold: the whole pool when it has
 * fewer than K).
 *
 * Each worker talks to the parent over two pipes. Up, lines:
 *	P <counts>     progress, once a second (progress.c)
 *	S              every attempt settled; waits for the parent's go
 *	H              the hold is over; waits for the parent's go
 *	R <json>       the result (struct cf_out), then it exits
 * Down, one byte per go. The parent lets every worker past S when all have
 * settled (so that the holds overlap), and past H when all are there, after
 * reading the broker's memory: that reading is the one with every worker's
 * connections open. Then it adds the results up into one report.
 */
#include "bench/bench.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- struct cf_out <-> JSON ---- */

static json_t *hist_out(const struct hist *h)
{
	json_t *o = json_object(), *b = json_array();
	json_object_set_new(o, "n", json_integer((json_int_t)h->count));
	json_object_set_new(o, "min", json_integer((json_int_t)h->min));
	json_object_set_new(o, "max", json_integer((json_int_t)h->max));
	json_object_set_new(o, "sum", json_real(h->sum));
	for (int i = 0; i < HIST_BUCKETS; i++)
		if (h->b[i]) {
			json_array_append_new(b, json_integer(i));
			json_array_append_new(b, json_integer((json_int_t)h->b[i]));
		}
	json_object_set_new(o, "b", b);
	return o;
}

static uint64_t geti(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
}

static void hist_in(json_t *o, struct hist *h)
{
	hist_init(h);
	if (!json_is_object(o))
		return;
	h->count = geti(o, "n");
	h->min = geti(o, "min");
	h->max = geti(o, "max");
	h->sum = json_real_value(json_object_get(o, "sum"));
	json_t *b = json_object_get(o, "b");
	for (size_t i = 0; i + 1 < json_array_size(b); i += 2) {
		json_int_t k = json_integer_value(json_array_get(b, i));
		if (k >= 0 && k < HIST_BUCKETS)
			h->b[k] = (uint64_t)json_integer_value(json_array_get(b, i + 1));
	}
}

/* Sparse counts: [index, count, ...]. */
static json_t *counts_out(const uint64_t *v, int n)
{
	json_t *a = json_array();
	for (int i = 0; i < n; i++)
		if (v[i]) {
			json_array_append_new(a, json_integer(i));
			json_array_append_new(a, json_integer((json_int_t)v[i]));
		}
	return a;
}

static void counts_in(json_t *a, uint64_t *v, int n)
{
	for (size_t i = 0; i + 1 < json_array_size(a); i += 2) {
		json_int_t k = json_integer_value(json_array_get(a, i));
		if (k >= 0 && k < n)
			v[k] = (uint64_t)json_integer_value(json_array_get(a, i + 1));
	}
}

#define U64_FIELDS(X) \
	X(st.ok) X(st.bytes_in) X(st.bytes_out) X(st.first_connack) X(st.last_connack) \
	X(st.tls_full) X(st.tls_resumed) X(st.tls_not_resumed) X(st.pings) X(st.pongs) \
	X(st.pongs_late) X(attempts) X(settled) X(open_at_end) X(lost_in_hold) X(t0) \
	X(t_settled) X(rounds) X(last_pinged) X(last_answered) X(nth) X(interrupted) \
	X(unsettled) X(held_ns)
#define HISTS(X) X(conn) X(tcp) X(tls) X(conn_full) X(conn_res) X(tls_res)

static char *out_dump(const struct cf_out *r)
{
	json_t *j = json_object();
#define PUT(f) json_object_set_new(j, #f, json_integer((json_int_t)r->f));
	U64_FIELDS(PUT)
#undef PUT
#define PUTH(f) json_object_set_new(j, #f, hist_out(&r->st.f));
	HISTS(PUTH)
#undef PUTH
	json_object_set_new(j, "fail", counts_out(r->st.fail, BF__COUNT));
	json_object_set_new(j, "down", counts_out(r->st.down, BF__COUNT));
	json_object_set_new(j, "connack", counts_out(r->st.connack, 256));
	json_object_set_new(j, "disconnect_rc", counts_out(r->st.disconnect_rc, 256));
	json_object_set_new(j, "first_err", json_string(r->first_err));
	json_t *s = json_array();
	for (size_t i = 0; i < r->nstamps; i++)
		json_array_append_new(s, json_integer((json_int_t)r->stamps[i]));
	json_object_set_new(j, "stamps", s);
	char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return text;
}

static int out_load(const char *text, struct cf_out *r)
{
	json_t *j = json_loads(text, 0, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		return -EINVAL;
	}
	memset(r, 0, sizeof *r);
#define GET(f) r->f = (__typeof__(r->f))geti(j, #f);
	U64_FIELDS(GET)
#undef GET
#define GETH(f) hist_in(json_object_get(j, #f), &r->st.f);
	HISTS(GETH)
#undef GETH
	hist_init(&r->st.lat);
	counts_in(json_object_get(j, "fail"), r->st.fail, BF__COUNT);
	counts_in(json_object_get(j, "down"), r->st.down, BF__COUNT);
	counts_in(json_object_get(j, "connack"), r->st.connack, 256);
	counts_in(json_object_get(j, "disconnect_rc"), r->st.disconnect_rc, 256);
	const char *e = json_string_value(json_object_get(j, "first_err"));
	snprintf(r->first_err, sizeof r->first_err, "%s", e ? e : "");
	json_t *s = json_object_get(j, "stamps");
	size_t n = json_array_size(s);
	if (n && (r->stamps = malloc(n * sizeof *r->stamps)))
		for (size_t i = 0; i < n; i++)
			r->stamps[r->nstamps++] = (uint64_t)json_integer_value(json_array_get(s, i));
	json_decref(j);
	return 0;
}

/* Add worker result w into the run's r. */
static void out_add(struct cf_out *r, struct cf_out *w, bool first)
{
	if (first) {
		struct cf_out keep = *w;
		*r = keep;
		r->procs = 1;
		w->stamps = NULL;
		return;
	}
	bstats_add(&r->st, &w->st);
	r->attempts += w->attempts;
	r->settled += w->settled;
	r->open_at_end += w->open_at_end;
	r->lost_in_hold += w->lost_in_hold;
	r->last_pinged += w->last_pinged;
	r->last_answered += w->last_answered;
	if (w->t0 < r->t0)
		r->t0 = w->t0;
	if (w->t_settled > r->t_settled)
		r->t_settled = w->t_settled;
	if (w->rounds > r->rounds)
		r->rounds = w->rounds;
	if (w->held_ns > r->held_ns)
		r->held_ns = w->held_ns;
	r->interrupted |= w->interrupted;
	r->unsettled |= w->unsettled;
	if (!r->first_err[0])
		memcpy(r->first_err, w->first_err, sizeof r->first_err);
	uint64_t *s = realloc(r->stamps, (r->nstamps + w->nstamps + 1) * sizeof *s);
	if (s)
		r->stamps = s;
	if (s && w->nstamps) {
		memcpy(s + r->nstamps, w->stamps, w->nstamps * sizeof *s);
		r->nstamps += w->nstamps;
	}
	r->procs++;
}

/* ---- the worker side ---- */

/* See bench/bench.h. */
void bproc_sync(const struct bench_opts *o, char what, struct bench *b)
{
	char c;

	if (!o->worker)
		return;
	bench_progress(b, true);
	dprintf(o->rep_fd, "%c\n", what);
	while (read(o->ctl_fd, &c, 1) < 0 && errno == EINTR)
		;
}

/* Worker w of k: its share of the connections and of the pool. */
static int share(const struct bench_opts *o, const struct bpool *pool, int w, int k,
		 struct bench_opts *wo, struct bpool *wp)
{
	*wo = *o;
	wo->procs = 1;
	wo->broker_pid = 0; /* the parent reads it */
	wo->connections = o->connections / k + (w < o->connections % k);
	wo->id_base = 0;
	for (int i = 0; i < w; i++)
		wo->id_base += (uint32_t)(o->connections / k + (i < o->connections % k));
	*wp = (struct bpool){ 0 };
	if (!pool->n)
		return 0;
	bool split = o->mode == BENCH_SIGNUP || pool->n >= (size_t)k;
	if (!split) {
		*wp = *pool;
		return 0;
	}
	size_t lim = o->mode == BENCH_SIGNUP ? (size_t)o->connections : pool->n;
	wp->v = malloc(((lim + (size_t)k - 1) / (size_t)k + 1) * sizeof *wp->v);
	if (!wp->v)
		return -ENOMEM;
	for (size_t i = (size_t)w; i < lim; i += (size_t)k)
		wp->v[wp->n++] = pool->v[i];
	if (o->mode == BENCH_SIGNUP)
		wo->connections = (int)wp->n;
	return 0;
}

static void worker(const struct bench_opts *o, const struct bpool *pool, int w, int up, int down)
{
	struct bench_opts wo;
	struct bpool wp;
	struct cf_out *r = calloc(1, sizeof *r);
	int rc = BENCH_EXIT_FAIL;

	if (r && share(o, pool, w, o->procs, &wo, &wp) == 0) {
		wo.worker = true;
		wo.rep_fd = up;
		wo.ctl_fd = down;
		rc = cf_run(&wo, &wp, r);
		if (!rc) {
			char *text = out_dump(r);
			if (text) {
				dprintf(up, "R %s\n", text);
				free(text);
			} else {
				rc = BENCH_EXIT_FAIL;
			}
		}
	}
	_exit(rc);
}

/* ---- the parent ---- */

struct wk {
	pid_t pid;
	int up, down;
	char *buf;
	size_t len, cap;
	bool eof, at_s, at_h;
	struct bprog prog;
	struct cf_out *res;
};

static void release(struct wk *v, int k, char what)
{
	for (int i = 0; i < k; i++) {
		if (v[i].eof)
			continue;
		if (what == 'S')
			v[i].at_s = false;
		else
			v[i].at_h = false;
		(void)!write(v[i].down, "g", 1);
	}
}

static void line(struct wk *w, char *s)
{
	switch (s[0]) {
	case 'P': {
		struct bprog *p = &w->prog;
		unsigned long long a[7];
		if (sscanf(s + 1, "%llu %llu %llu %llu %llu %llu %llu %u %d", &a[0], &a[1], &a[2],
			   &a[3], &a[4], &a[5], &a[6], &p->round, &p->phase) == 9) {
			p->target = a[0];
			p->settled = a[1];
			p->ready = a[2];
			p->lost = a[3];
			p->resumed = a[4];
			p->pings = a[5];
			p->pongs = a[6];
		}
		break;
	}
	case 'S':
		w->at_s = true;
		break;
	case 'H':
		w->at_h = true;
		break;
	case 'R':
		w->res = calloc(1, sizeof *w->res);
		if (w->res && out_load(s + 2, w->res) != 0) {
			free(w->res);
			w->res = NULL;
		}
		break;
	}
}

/* Read what worker w wrote; split lines. */
static void drain(struct wk *w)
{
	if (w->cap - w->len < 65536) {
		size_t cap = w->cap ? w->cap * 2 : 131072;
		char *b = realloc(w->buf, cap);
		if (!b) {
			w->eof = true;
			return;
		}
		w->buf = b;
		w->cap = cap;
	}
	ssize_t n = read(w->up, w->buf + w->len, w->cap - w->len - 1);
	if (n <= 0) {
		if (n == 0 || (errno != EINTR && errno != EAGAIN))
			w->eof = true;
		return;
	}
	w->len += (size_t)n;
	w->buf[w->len] = 0;
	char *s = w->buf, *nl;
	while ((nl = memchr(s, '\n', w->len - (size_t)(s - w->buf)))) {
		*nl = 0;
		line(w, s);
		s = nl + 1;
	}
	w->len -= (size_t)(s - w->buf);
	memmove(w->buf, s, w->len);
}

static void progress(const struct bench_opts *o, struct wk *v, int k, uint64_t t0, bool final)
{
	struct bprog p = { .phase = PH_RUN };
	bool hold = true;
	for (int i = 0; i < k; i++) {
		const struct bprog *q = &v[i].prog;
		p.target += q->target;
		p.settled += q->settled;
		p.ready += q->ready;
		p.lost += q->lost;
		p.resumed += q->resumed;
		p.pings += q->pings;
		p.pongs += q->pongs;
		if (q->round > p.round)
			p.round = q->round;
		hold &= q->phase == PH_HOLD;
	}
	if (hold)
		p.phase = PH_HOLD;
	p.target = (uint64_t)o->connections;
	prog_print(o, &p, (double)(bench_now() - t0) / 1e9, final);
}

static bool all(struct wk *v, int k, char what)
{
	bool any = false;
	for (int i = 0; i < k; i++) {
		if (v[i].eof)
			continue;
		if (!(what == 'S' ? v[i].at_s : v[i].at_h))
			return false;
		any = true;
	}
	return any;
}

/* See bench/bench.h. */
int bproc_run(const struct bench_opts *o, const struct bpool *pool, struct cf_out *out)
{
	int k = o->procs, rc = 0;
	struct wk *v = calloc((size_t)k, sizeof *v);
	if (!v) {
		fprintf(stderr, "vouch-bench: out of memory\n");
		return BENCH_EXIT_FAIL;
	}
	long rss_before = o->broker_pid ? rep_rss_kb(o->broker_pid) : 0, rss_after = 0;
	uint64_t t0 = bench_now();
	fflush(stdout);
	fflush(stderr);
	for (int i = 0; i < k; i++) {
		int up[2], down[2];
		if (pipe2(up, O_CLOEXEC) != 0 || pipe2(down, O_CLOEXEC) != 0) {
			fprintf(stderr, "vouch-bench: pipe: %s\n", strerror(errno));
			k = i;
			rc = BENCH_EXIT_FAIL;
			break;
		}
		pid_t pid = fork();
		if (pid == 0) {
			close(up[0]);
			close(down[1]);
			for (int j = 0; j < i; j++) {
				close(v[j].up);
				close(v[j].down);
			}
			worker(o, pool, i, up[1], down[0]);
		}
		close(up[1]);
		close(down[0]);
		if (pid < 0) {
			fprintf(stderr, "vouch-bench: fork: %s\n", strerror(errno));
			close(up[0]);
			close(down[1]);
			k = i;
			rc = BENCH_EXIT_FAIL;
			break;
		}
		v[i] = (struct wk){ .pid = pid, .up = up[0], .down = down[1] };
	}
	uint64_t shown = bench_now();
	bool held = false;
	for (;;) {
		struct pollfd pf[k ? k : 1];
		int n = 0, idx[k ? k : 1];
		for (int i = 0; i < k; i++)
			if (!v[i].eof) {
				pf[n] = (struct pollfd){ .fd = v[i].up, .events = POLLIN };
				idx[n++] = i;
			}
		if (!n)
			break;
		int r = poll(pf, (nfds_t)n, 200);
		for (int i = 0; r > 0 && i < n; i++)
			if (pf[i].revents)
				drain(&v[idx[i]]);
		if (all(v, k, 'S'))
			release(v, k, 'S');
		if (all(v, k, 'H')) {
			rss_after = o->broker_pid ? rep_rss_kb(o->broker_pid) : 0;
			held = true;
			release(v, k, 'H');
		}
		if (!o->quiet && bench_now() - shown >= 1000000000ull) {
			shown = bench_now();
			progress(o, v, k, t0, false);
		}
	}
	if (!o->quiet)
		progress(o, v, k, t0, true);
	int got = 0;
	for (int i = 0; i < k; i++) {
		int st = 0;
		while (waitpid(v[i].pid, &st, 0) < 0 && errno == EINTR)
			;
		if (!v[i].res) {
			fprintf(stderr, "vouch-bench: worker %d (pid %d) %s without a result\n", i,
				(int)v[i].pid, WIFSIGNALED(st) ? "was killed" : "ended");
			rc = BENCH_EXIT_FAIL;
		} else {
			out_add(out, v[i].res, got++ == 0);
			free(v[i].res->stamps);
			free(v[i].res);
		}
		close(v[i].up);
		close(v[i].down);
		free(v[i].buf);
	}
	free(v);
	if (!got)
		return BENCH_EXIT_FAIL;
	if (rc)
		out->unsettled = true; /* a worker's share is missing: exit 1 */
	out->attempts = (uint64_t)o->connections;
	out->rss_before = rss_before;
	out->rss_after = held ? rss_after : o->broker_pid ? rep_rss_kb(o->broker_pid) : 0;
	return 0;
}
