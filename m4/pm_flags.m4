# PM_CHECK_CFLAG(FLAG, ACTION-IF-OK)
# Compile an empty program with FLAG (and -Werror so that unknown warning
# options fail) and run ACTION-IF-OK when the compiler accepts it.
AC_DEFUN([PM_CHECK_CFLAG], [
	AC_MSG_CHECKING([whether $CC accepts $1])
	pm_save_CFLAGS="$CFLAGS"
	CFLAGS="$CFLAGS -Werror $1"
	AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])],
	    [AC_MSG_RESULT([yes]); $2], [AC_MSG_RESULT([no])])
	CFLAGS="$pm_save_CFLAGS"
])

# AX_PTHREAD_SIMPLE: glibc threads; -pthread for compiling and linking.
AC_DEFUN([AX_PTHREAD_SIMPLE], [
	PTHREAD_CFLAGS="-pthread"
	PTHREAD_LIBS="-pthread"
	AC_SUBST([PTHREAD_CFLAGS])
	AC_SUBST([PTHREAD_LIBS])
])
