// Package accessconf reads fwknopd's configuration files, access.conf
// (with %include, %include_folder and %include_keys) and fwknopd.conf,
// and decides what a decoded SPA packet may open, as fwknopd 2.6.10 does
// (server/access.c, server/config_init.c, server/incoming_spa.c). The
// supported keys, the ones ignored with a warning and the ones refused are
// listed in docs/fwknop.md.
//
// The package is pure: included files are read through an fs.FS, time is
// passed in, nothing is logged (warnings are returned). Parsed values are
// read-only after parsing and safe for concurrent use.
package accessconf
