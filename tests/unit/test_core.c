/*
 * Unit tests of the small core pieces: the timer heap (order, lazy
 * re-arming), the XXH3 hash map (insert, delete, tombstones, growth against
 * a reference), and flag / config-file parsing (every bad value refused
 * with one message).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "core/config.h"
#include "core/hmap.h"
#include "core/timer.h"

static int failures;
#define CHECK(c, ...) do { if (!(c)) { failures++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static void test_timers(void)
{
	struct timer_heap h = { 0 };
	CHECK(timer_next(&h) == UINT64_MAX, "empty heap");
	srand(7);
	uint64_t at[5000];
	for (uint32_t i = 0; i < 5000; i++) {
		at[i] = (uint64_t)(rand() % 100000);
		CHECK(timer_add(&h, at[i], 1, i, i * 2) == 0, "add");
	}
	struct timer_ent e;
	CHECK(timer_pop_due(&h, 0, &e) == 0 || e.at_ms == 0, "nothing due before time");
	uint64_t last = 0;
	uint32_t n = 0;
	while (timer_pop_due(&h, 100000, &e)) {
		CHECK(e.at_ms >= last, "in deadline order");
		CHECK(e.at_ms == at[e.id] && e.gen == e.id * 2, "entry intact");
		last = e.at_ms;
		n++;
	}
	CHECK(n == 5000 || n == 5000 - 0, "all popped (%u)", n);
	CHECK(h.n == 0, "empty after");
	timer_add(&h, 50, 2, 1, 1);
	CHECK(timer_pop_due(&h, 49, &e) == 0, "not yet due");
	CHECK(timer_pop_due(&h, 50, &e) == 1 && e.kind == 2, "due at its time");
	timer_free(&h);
}

struct item {
	char key[24];
	size_t len;
};

static void item_key(const void *v, const void **k, size_t *len)
{
	const struct item *it = v;
	*k = it->key;
	*len = it->len;
}

static void test_hmap(void)
{
	struct hmap m;
	hmap_init(&m, item_key);
	enum { N = 20000 };
	struct item *items = calloc(N, sizeof *items);
	bool *in = calloc(N, sizeof *in);
	for (int i = 0; i < N; i++) {
		items[i].len = (size_t)snprintf(items[i].key, sizeof items[i].key, "client-%d", i);
	}
	srand(11);
	for (int round = 0; round < 200000; round++) {
		int i = rand() % N;
		if (in[i]) {
			CHECK(hmap_get(&m, items[i].key, items[i].len) == &items[i], "present %d", i);
			if (rand() & 1) {
				CHECK(hmap_del(&m, &items[i]) == 0, "delete %d", i);
				in[i] = false;
			}
		} else {
			CHECK(hmap_get(&m, items[i].key, items[i].len) == NULL, "absent %d", i);
			CHECK(hmap_put(&m, &items[i]) == 0, "put %d", i);
			in[i] = true;
		}
	}
	uint32_t live = 0, it = 0, seen = 0;
	for (int i = 0; i < N; i++)
		live += in[i];
	CHECK(m.n == live, "count %u vs %u", m.n, live);
	while (hmap_next(&m, &it))
		seen++;
	CHECK(seen == live, "iteration sees every live entry (%u vs %u)", seen, live);
	CHECK(hmap_del(&m, &items[0]) == (in[0] ? 0 : -ENOENT), "delete result");
	hmap_free(&m);
	free(items);
	free(in);
}

static int parse(const char *const *args, int n, struct vouch_config *c, char *err, size_t el)
{
	char *argv[16];
	argv[0] = (char *)"vouchd";
	for (int i = 0; i < n; i++)
		argv[i + 1] = (char *)args[i];
	config_defaults(c);
	int rc = config_parse_args(c, n + 1, argv, err, el);
	if (rc == 0)
		rc = config_finish(c, err, el);
	return rc;
}

static void test_config(void)
{
	struct vouch_config c;
	char err[512];
	const char *good[] = { "--listen", "127.0.0.1:1999", "--shards", "3", "--max-packet-size", "4096",
			       "--io-compat", "5.10", "--log-level", "warn" };
	CHECK(parse(good, 10, &c, err, sizeof err) == 0, "good flags: %s", err);
	CHECK(c.shards == 3 && c.max_packet_size == 4096 && c.io_compat && c.n_listeners == 1,
	      "values applied");
	const char *bad[][2] = {
		{ "--shards", "0" }, { "--shards", "abc" }, { "--listen", "nope" },
		{ "--listen", "1.2.3.4:70000" }, { "--max-packet-size", "1" }, { "--io-compat", "4.19" },
		{ "--log-level", "loud" }, { "--bogus", "1" }, { "--receive-maximum", "-1" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = 0;
		CHECK(parse(bad[i], 2, &c, err, sizeof err) == -EINVAL, "%s %s refused", bad[i][0], bad[i][1]);
		CHECK(err[0] && !strchr(err, '\n'), "%s: one line of message: '%s'", bad[i][0], err);
	}
	const char *help[] = { "--help" };
	CHECK(parse(help, 1, &c, err, sizeof err) == 1, "--help");
	/* config file: keys are the flag names */
	char path[] = "/tmp/vouch-test-conf-XXXXXX";
	int fd = mkstemp(path);
	const char *text = "# comment\nshards = 2\nlisten = 127.0.0.1:2000 # trailing\nmax-keepalive=60\n";
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "write");
	close(fd);
	const char *cf[] = { "--config", path };
	CHECK(parse(cf, 2, &c, err, sizeof err) == 0, "config file: %s", err);
	CHECK(c.shards == 2 && c.max_keepalive == 60 && c.n_listeners == 1, "config values");
	fd = open(path, O_WRONLY | O_TRUNC);
	const char *badtext = "shards = 2\nfrobnicate = 1\n";
	CHECK(write(fd, badtext, strlen(badtext)) == (ssize_t)strlen(badtext), "write");
	close(fd);
	CHECK(parse(cf, 2, &c, err, sizeof err) == -EINVAL && strstr(err, ":2"), "bad key names its line: %s", err);
	unlink(path);
}

int main(void)
{
	test_timers();
	test_hmap();
	test_config();
	if (failures) {
		fprintf(stderr, "test_core: %d failures\n", failures);
		return 1;
	}
	printf("test_core: ok\n");
	return 0;
}
