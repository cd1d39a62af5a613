/* store_rec.c - not yet written */
#include "config.h"
