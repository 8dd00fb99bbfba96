"""Bindings to the X client libraries hdx uses, loaded at run time with cffi's ABI mode.

Why ABI mode and not a compiled module: it needs only the shared libraries an X server's host
already has (``libX11.so.6`` and friends), no headers and no compiler, so ``pip install`` stays
the same with or without X. The structs below are copied from the public headers (Xlib.h,
XShm.h, Xfixes.h, Xrandr.h) for LP64 Linux; tests compare what they read with ``xwd``.

Everything here is a thin declaration; the logic lives in ``display.py`` and friends.
"""

from __future__ import annotations

import ctypes.util
import threading
from typing import Any

from cffi import FFI

from hdx.errors import SourceError

CDEF = """
typedef struct _XDisplay Display;
typedef unsigned long XID;
typedef XID Window;
typedef XID Drawable;
typedef XID Cursor;
typedef XID XserverRegion;
typedef XID Damage;
typedef unsigned long Atom;
typedef unsigned long Time;
typedef unsigned long KeySym;
typedef unsigned char KeyCode;
typedef int Bool;
typedef int Status;
typedef char *XPointer;
typedef struct Visual Visual;

typedef struct _XImage {
    int width, height;
    int xoffset;
    int format;
    char *data;
    int byte_order;
    int bitmap_unit;
    int bitmap_bit_order;
    int bitmap_pad;
    int depth;
    int bytes_per_line;
    int bits_per_pixel;
    unsigned long red_mask;
    unsigned long green_mask;
    unsigned long blue_mask;
    XPointer obdata;
    struct {
        void *create_image;
        int (*destroy_image)(struct _XImage *);
        void *get_pixel;
        void *put_pixel;
        void *sub_image;
        void *add_pixel;
    } f;
} XImage;

typedef struct {
    unsigned char type;
    Display *display;
    XID resourceid;
    unsigned long serial;
    unsigned char error_code;
    unsigned char request_code;
    unsigned char minor_code;
} XErrorEvent;

typedef struct { short x, y; unsigned short width, height; } XRectangle;

typedef union { int type; long pad[24]; } XEvent;

typedef int (*XErrorHandler)(Display *, XErrorEvent *);
typedef int (*XIOErrorHandler)(Display *);
typedef void (*XIOErrorExitHandler)(Display *, void *);

Status XInitThreads(void);
Display *XOpenDisplay(const char *);
int XCloseDisplay(Display *);
int XDefaultScreen(Display *);
Window XRootWindow(Display *, int);
int XDefaultDepth(Display *, int);
Visual *XDefaultVisual(Display *, int);
int XDisplayWidth(Display *, int);
int XDisplayHeight(Display *, int);
int XConnectionNumber(Display *);
char *XDisplayString(Display *);
int XFlush(Display *);
int XSync(Display *, Bool);
int XPending(Display *);
int XNextEvent(Display *, XEvent *);
int XFree(void *);
Bool XQueryExtension(Display *, const char *, int *, int *, int *);
Status XGetGeometry(Display *, Drawable, Window *, int *, int *, unsigned int *,
                    unsigned int *, unsigned int *, unsigned int *);
XImage *XGetImage(Display *, Drawable, int, int, unsigned int, unsigned int,
                  unsigned long, int);
XErrorHandler XSetErrorHandler(XErrorHandler);
XIOErrorHandler XSetIOErrorHandler(XIOErrorHandler);
void XSetIOErrorExitHandler(Display *, XIOErrorExitHandler, void *);
int XGetErrorText(Display *, int, char *, int);
KeyCode XKeysymToKeycode(Display *, KeySym);
KeySym XStringToKeysym(const char *);
int XDisplayKeycodes(Display *, int *, int *);
KeySym *XGetKeyboardMapping(Display *, KeyCode, int, int *);
int XChangeKeyboardMapping(Display *, int, int, KeySym *, int);
Bool XQueryPointer(Display *, Window, Window *, Window *, int *, int *, int *, int *,
                   unsigned int *);
char *XGetAtomName(Display *, Atom);
int XSelectInput(Display *, Window, long);

/* MIT-SHM (libXext) */
typedef unsigned long ShmSeg;
typedef struct {
    ShmSeg shmseg;
    int shmid;
    char *shmaddr;
    Bool readOnly;
} XShmSegmentInfo;
Bool XShmQueryExtension(Display *);
XImage *XShmCreateImage(Display *, Visual *, unsigned int, int, char *, XShmSegmentInfo *,
                        unsigned int, unsigned int);
Bool XShmAttach(Display *, XShmSegmentInfo *);
Bool XShmDetach(Display *, XShmSegmentInfo *);
Bool XShmGetImage(Display *, Drawable, XImage *, int, int, unsigned long);

/* DAMAGE (libXdamage) */
Bool XDamageQueryExtension(Display *, int *, int *);
Damage XDamageCreate(Display *, Drawable, int);
void XDamageDestroy(Display *, Damage);
void XDamageSubtract(Display *, Damage, XserverRegion, XserverRegion);

/* XFIXES (libXfixes) */
typedef struct {
    short x, y;
    unsigned short width, height;
    unsigned short xhot, yhot;
    unsigned long cursor_serial;
    unsigned long *pixels;
    Atom atom;
    const char *name;
} XFixesCursorImage;
Bool XFixesQueryExtension(Display *, int *, int *);
Status XFixesQueryVersion(Display *, int *, int *);
XFixesCursorImage *XFixesGetCursorImage(Display *);
XserverRegion XFixesCreateRegion(Display *, XRectangle *, int);
void XFixesDestroyRegion(Display *, XserverRegion);
XRectangle *XFixesFetchRegion(Display *, XserverRegion, int *);

/* XTEST (libXtst) */
Bool XTestQueryExtension(Display *, int *, int *, int *, int *);
int XTestFakeKeyEvent(Display *, unsigned int, Bool, unsigned long);
int XTestFakeButtonEvent(Display *, unsigned int, Bool, unsigned long);
int XTestFakeMotionEvent(Display *, int, int, int, unsigned long);

/* RANDR (libXrandr) */
typedef XID RROutput;
typedef struct {
    Atom name;
    Bool primary;
    Bool automatic;
    int noutput;
    int x;
    int y;
    int width;
    int height;
    int mwidth;
    int mheight;
    RROutput *outputs;
} XRRMonitorInfo;
Bool XRRQueryExtension(Display *, int *, int *);
Status XRRQueryVersion(Display *, int *, int *);
XRRMonitorInfo *XRRGetMonitors(Display *, Window, Bool, int *);
void XRRFreeMonitors(XRRMonitorInfo *);
void XRRSelectInput(Display *, Window, int);
"""

ZPIXMAP = 2
ALL_PLANES = 0xFFFFFFFFFFFFFFFF
DAMAGE_REPORT_NON_EMPTY = 3
RR_SCREEN_CHANGE_NOTIFY_MASK = 1

_LIBRARIES = {
    "x11": ("X11", "libX11.so.6"),
    "xext": ("Xext", "libXext.so.6"),
    "xdamage": ("Xdamage", "libXdamage.so.1"),
    "xfixes": ("Xfixes", "libXfixes.so.3"),
    "xtst": ("Xtst", "libXtst.so.6"),
    "xrandr": ("Xrandr", "libXrandr.so.2"),
}


class Xlib:
    """The loaded libraries: ``x11`` is required; an extension library may be ``None``."""

    def __init__(self) -> None:
        self.ffi = FFI()
        self.ffi.cdef(CDEF)
        self.missing: dict[str, str] = {}
        loaded: dict[str, Any] = {}
        for key, (short, soname) in _LIBRARIES.items():
            try:
                loaded[key] = self.ffi.dlopen(soname)
            except OSError:
                found = ctypes.util.find_library(short)
                try:
                    loaded[key] = self.ffi.dlopen(found) if found else None
                except OSError:
                    loaded[key] = None
            if loaded[key] is None:
                self.missing[key] = f"{soname} is not installed"
        if loaded["x11"] is None:
            raise SourceError("X11 capture needs libX11 (Debian: apt-get install libx11-6)")
        self.x11: Any = loaded["x11"]
        self.xext: Any = loaded["xext"]
        self.xdamage: Any = loaded["xdamage"]
        self.xfixes: Any = loaded["xfixes"]
        self.xtst: Any = loaded["xtst"]
        self.xrandr: Any = loaded["xrandr"]
        # Several threads open their own displays (capture, input, cursor); Xlib must know.
        self.x11.XInitThreads()


_lock = threading.Lock()
_loaded: Xlib | None = None


def xlib() -> Xlib:
    """The process-wide bindings, loaded on first use (``SourceError`` without libX11)."""
    global _loaded
    with _lock:
        if _loaded is None:
            _loaded = Xlib()
        return _loaded
