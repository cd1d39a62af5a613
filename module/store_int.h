/* store_int.h - not yet written */
