/* store_queue.c - not yet written */
#include "config.h"
