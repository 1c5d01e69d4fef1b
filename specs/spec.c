/* placeholder */ typedef int mq_placeholder_t;
