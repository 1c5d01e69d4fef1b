/* network.h - the `network` row of the fields table (fields.h): user
 * networking and its port forwards.  Internal to specs/. */
#ifndef MQ_SPECS_NETWORK_H
#define MQ_SPECS_NETWORK_H

#include "specs/fields.h"

mq_field_parse_fn mq_network_parse;
mq_field_to_json_fn mq_network_to_json;
mq_field_from_json_fn mq_network_from_json;

#endif
