/* qmp-snap.c - the floor of bench/snapshot-live.sh: a minimal QMP client
 * that runs one snapshot job and nothing else.
 *
 *   qmp-snap SOCKET save|delete TAG VMSTATE_NODE NODE...
 *
 * Connects to the QMP socket, reads the greeting, sends qmp_capabilities,
 * then `snapshot-save` (job-id, tag, vmstate, devices) or `snapshot-delete`
 * (job-id, tag, devices), reads events until JOB_STATUS_CHANGE says
 * "concluded", sends query-jobs (to learn whether it failed) and job-dismiss,
 * and exits 0 when the job succeeded, 1 when it failed, 2 on a usage or
 * connection error.  Blocking reads with a 10-minute poll timeout; no
 * progress polling (the job's own events are all it waits for). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

static int fd = -1;
static char buf[1 << 20];
static size_t have;

static void die(const char *m)
{
	fprintf(stderr, "qmp-snap: %s\n", m);
	exit(2);
}

/* Next line as a JSON object (caller puts it). */
static json_object *next_msg(void)
{
	for (;;) {
		char *nl = memchr(buf, '\n', have);
		if (nl) {
			*nl = '\0';
			json_object *o = json_tokener_parse(buf);
			size_t used = (size_t)(nl - buf) + 1;
			memmove(buf, nl + 1, have - used);
			have -= used;
			if (o)
				return o;
			continue;
		}
		if (have == sizeof(buf))
			die("line too long");
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 600000) <= 0)
			die("timeout or poll error");
		ssize_t n = read(fd, buf + have, sizeof(buf) - have);
		if (n <= 0)
			die("connection closed");
		have += (size_t)n;
	}
}

static void send_cmd(json_object *cmd)
{
	const char *s = json_object_to_json_string_ext(cmd, JSON_C_TO_STRING_PLAIN);
	size_t len = strlen(s);
	char *line = malloc(len + 1);
	if (!line)
		die("out of memory");
	memcpy(line, s, len);
	line[len] = '\n';
	for (size_t off = 0; off < len + 1;) {
		ssize_t n = write(fd, line + off, len + 1 - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write failed");
		off += (size_t)n;
	}
	free(line);
	json_object_put(cmd);
}

static json_object *command(const char *name, json_object *args)
{
	json_object *c = json_object_new_object();
	json_object_object_add(c, "execute", json_object_new_string(name));
	if (args)
		json_object_object_add(c, "arguments", args);
	return c;
}

/* Read until a reply ("return" or "error"); events seen meanwhile are
 * checked for the job's status.  Returns the reply. */
static const char *job_id = "qmp-snap-job";
static int concluded;
static int dismissed;

static void see_event(json_object *o)
{
	json_object *ev, *data, *id, *st;
	if (!json_object_object_get_ex(o, "event", &ev) || strcmp(json_object_get_string(ev), "JOB_STATUS_CHANGE") ||
	    !json_object_object_get_ex(o, "data", &data) || !json_object_object_get_ex(data, "id", &id) ||
	    strcmp(json_object_get_string(id), job_id) || !json_object_object_get_ex(data, "status", &st))
		return;
	if (!strcmp(json_object_get_string(st), "concluded"))
		concluded = 1;
	if (!strcmp(json_object_get_string(st), "null"))
		dismissed = 1;
}

static json_object *reply(void)
{
	for (;;) {
		json_object *o = next_msg();
		if (json_object_object_get_ex(o, "return", NULL) || json_object_object_get_ex(o, "error", NULL))
			return o;
		see_event(o);
		json_object_put(o);
	}
}

int main(int argc, char **argv)
{
	if (argc < 5 || (strcmp(argv[2], "save") && strcmp(argv[2], "delete")))
		die("usage: qmp-snap SOCKET save|delete TAG VMSTATE_NODE NODE...");
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(argv[1]) >= sizeof(a.sun_path))
		die("socket path too long");
	memcpy(a.sun_path, argv[1], strlen(argv[1]) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("cannot connect");
	json_object_put(next_msg()); /* greeting */
	send_cmd(command("qmp_capabilities", NULL));
	json_object_put(reply());

	int save = !strcmp(argv[2], "save");
	json_object *args = json_object_new_object();
	json_object_object_add(args, "job-id", json_object_new_string(job_id));
	json_object_object_add(args, "tag", json_object_new_string(argv[3]));
	if (save)
		json_object_object_add(args, "vmstate", json_object_new_string(argv[4]));
	json_object *devs = json_object_new_array();
	for (int i = 5; i < argc; i++)
		json_object_array_add(devs, json_object_new_string(argv[i]));
	json_object_object_add(args, "devices", devs);
	send_cmd(command(save ? "snapshot-save" : "snapshot-delete", args));
	json_object *r = reply();
	if (json_object_object_get_ex(r, "error", NULL)) {
		fprintf(stderr, "qmp-snap: %s\n", json_object_to_json_string(r));
		return 1;
	}
	json_object_put(r);
	while (!concluded) {
		json_object *o = next_msg();
		see_event(o);
		json_object_put(o);
	}
	send_cmd(command("query-jobs", NULL));
	r = reply();
	int failed = strstr(json_object_to_json_string(r), "\"error\"") != NULL;
	if (failed)
		fprintf(stderr, "qmp-snap: job failed: %s\n", json_object_to_json_string(r));
	json_object_put(r);
	json_object *d = json_object_new_object();
	json_object_object_add(d, "id", json_object_new_string(job_id));
	send_cmd(command("job-dismiss", d));
	json_object_put(reply());
	close(fd);
	return failed;
}
