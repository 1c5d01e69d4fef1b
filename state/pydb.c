/* pydb.c - the Python maqet's instances.db, read-only (see pydb.h). */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "state/pydb.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

static char *col_text(sqlite3_stmt *st, int i)
{
	if (i < 0 || sqlite3_column_type(st, i) == SQLITE_NULL)
		return NULL;
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? xstrdup((const char *)t) : NULL;
}

/* file: URI for path, with '%', '?' and '#' escaped. */
static char *ro_uri(const char *path)
{
	struct mq_strbuf sb = MQ_STRBUF_INIT;
	mq_strbuf_init(&sb);
	mq_strbuf_adds(&sb, "file:");
	for (const char *p = path; *p; p++) {
		if (*p == '%' || *p == '?' || *p == '#')
			mq_strbuf_addf(&sb, "%%%02X", (unsigned)(unsigned char)*p);
		else
			mq_strbuf_addc(&sb, *p);
	}
	mq_strbuf_adds(&sb, "?mode=ro");
	return mq_strbuf_detach(&sb);
}

int mq_pydb_read(const char *path, struct mq_pyvms *out, struct mq_error **err)
{
	struct stat stb;
	if (stat(path, &stb) < 0)
		return mq_error_set(err, errno, "cannot read python maqet database '%s': no such file", path);
	char *uri = ro_uri(path);
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
	free(uri);
	if (rc != SQLITE_OK) {
		int r = mq_error_set(err, EIO, "cannot read python maqet database '%s': %s", path,
				     db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return r;
	}
	sqlite3_busy_timeout(db, 5000);
	sqlite3_stmt *st = NULL;
	rc = sqlite3_prepare_v2(db, "SELECT rowid, * FROM vm_instances ORDER BY rowid", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		int r = mq_error_set(err, EIO, "cannot read python maqet database '%s': %s (is it the python "
				     "maqet's instances.db?)", path, sqlite3_errmsg(db));
		sqlite3_close(db);
		return r;
	}
	int c_id = -1, c_name = -1, c_path = -1, c_data = -1, c_status = -1, c_pid = -1;
	for (int i = 1; i < sqlite3_column_count(st); i++) {
		const char *n = sqlite3_column_name(st, i);
		if (strcmp(n, "id") == 0)
			c_id = i;
		else if (strcmp(n, "name") == 0)
			c_name = i;
		else if (strcmp(n, "config_path") == 0)
			c_path = i;
		else if (strcmp(n, "config_data") == 0)
			c_data = i;
		else if (strcmp(n, "status") == 0)
			c_status = i;
		else if (strcmp(n, "pid") == 0)
			c_pid = i;
	}
	struct mq_pyvms l = { 0 };
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		l.v = xreallocarray(l.v, l.n + 1, sizeof(*l.v));
		struct mq_pyvm *vm = &l.v[l.n++];
		memset(vm, 0, sizeof(*vm));
		vm->id = col_text(st, c_id);
		if (!vm->id)
			vm->id = col_text(st, 0);
		vm->name = col_text(st, c_name);
		vm->config_path = col_text(st, c_path);
		vm->config_data = col_text(st, c_data);
		vm->status = col_text(st, c_status);
		vm->pid = c_pid >= 0 ? sqlite3_column_int64(st, c_pid) : 0;
	}
	int r = 0;
	if (rc != SQLITE_DONE) {
		r = mq_error_set(err, EIO, "cannot read python maqet database '%s': %s", path, sqlite3_errmsg(db));
		mq_pyvms_release(&l);
	} else {
		*out = l;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return r;
}

void mq_pyvms_release(struct mq_pyvms *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].id);
		free(l->v[i].name);
		free(l->v[i].config_path);
		free(l->v[i].config_data);
		free(l->v[i].status);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}
