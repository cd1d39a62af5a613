/* store_device.c - not yet written */
#include "config.h"
