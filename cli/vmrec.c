/* vmrec.c - one recorded VM for the operator verbs (see vmrec.h). */
#include "cli/vmrec.h"

#include <errno.h>
#include <string.h>

#include "specs/fromjson.h"
#include "util/xalloc.h"

int mq_cli_vm_load(struct mq_cli *cli, const char *name, const char *verb, struct mq_cli_vm *vm)
{
	memset(vm, 0, sizeof(*vm));
	bool have_db = false;
	if (mq_cli_open_store_existing(cli, &have_db))
		return MQ_EXIT_FAILURE;
	struct mq_error *err = NULL;
	int r = have_db ? mq_store_vm_get(cli->store, name, &vm->rec, &err) : -ENOENT;
	if (r == -ENOENT) {
		mq_error_free(err);
		mq_cli_err(cli, "cannot %s vm '%s': no such vm (see 'maqet status')", verb, name);
		return MQ_EXIT_FAILURE;
	}
	if (r < 0)
		return mq_cli_fail(cli, err);
	if (mq_spec_from_canonical(vm->rec->spec_json, vm->rec->source, &vm->spec, &err) < 0) {
		mq_error_prefix(&err, "cannot %s vm '%s': recorded spec unreadable", verb, name);
		vm->rec = mq_vm_record_free(vm->rec);
		return mq_cli_fail(cli, err);
	}
	mq_vm_paths_init(&vm->paths, cli->runtime_dir, name);
	return 0;
}

void mq_cli_vm_release(struct mq_cli_vm *vm)
{
	vm->rec = mq_vm_record_free(vm->rec);
	vm->spec = mq_spec_free(vm->spec);
	mq_vm_paths_release(&vm->paths);
}
