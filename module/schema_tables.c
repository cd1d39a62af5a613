/* schema_tables.c - not yet written */
#include "config.h"
