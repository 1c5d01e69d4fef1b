/* storage.h - the `storage` row of the fields table (fields.h): disks
 * (qcow2, raw) and host shares (virtfs).  Internal to specs/. */
#ifndef MQ_SPECS_STORAGE_H
#define MQ_SPECS_STORAGE_H

#include "specs/fields.h"

mq_field_parse_fn mq_storage_parse;
mq_field_to_json_fn mq_storage_to_json;
mq_field_from_json_fn mq_storage_from_json;

#endif
