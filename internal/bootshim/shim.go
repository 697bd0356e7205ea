// Package bootshim is the initramfs `rootfsc boot` puts in front of a disk image when the kernel
// is a distro's modular one (Debian's has virtio_blk, ext4 and dm-verity as modules, and no
// dm-mod.create= of its own, which needs device-mapper built in; Kata's guest kernel has them
// built in and boots the image with no initramfs). The shim is rootfsc-helper run as /init: it
// loads the modules its config lists, in order, does what the kernel's dm-init does for a
// dm-mod.create= on the command line (the line Kata's runtime builds from the verity
// parameters), mounts root= read-only and switches to it, running /sbin/init as PID 1.
package bootshim

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Config is the shim's configuration in the initramfs: a line "module PATH" for each module to
// load, in order.
const Config = "/rootfsc-boot-shim"

// Active says whether this process is the shim: PID 1 started as /init with its config beside
// it (rootfsc-helper in a build step is PID 1 too, never as /init).
func Active() bool {
	if os.Getpid() != 1 || len(os.Args) == 0 || os.Args[0] != "/init" {
		return false
	}
	_, err := os.Stat(Config)
	return err == nil
}

// Main runs the shim; it returns only on failure (the kernel then panics, and the console shows
// why).
func Main() {
	err := run()
	fmt.Fprintf(os.Stderr, "rootfsc boot shim: %v\n", err)
	// Give the console time to show it before the kernel panics on init's exit.
	time.Sleep(2 * time.Second)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "rootfsc boot shim: "+format+"\n", args...)
}

func run() error {
	for _, m := range []struct{ src, dst, fs string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fs, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	if err := loadModules(Config); err != nil {
		return err
	}
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	cmd := ParseCmdline(string(b))
	if c := cmd["dm-mod.create"]; c != "" {
		devs, err := ParseDMCreate(c)
		if err != nil {
			return fmt.Errorf("dm-mod.create: %w", err)
		}
		for _, d := range devs {
			for _, t := range d.Targets {
				for _, dev := range devicesOf(t) {
					if err := waitFor(dev, 60*time.Second); err != nil {
						return err
					}
				}
			}
			if err := createDM(d); err != nil {
				return fmt.Errorf("dm-mod.create: device %s: %w", d.Name, err)
			}
			t := d.Targets[0]
			logf("device-mapper device %s created: %d %d %s %s", d.Name, t.Start, t.Length, t.Type, t.Args)
		}
	}
	root := cmd["root"]
	if root == "" {
		return errors.New("no root= on the kernel command line")
	}
	if err := waitFor(root, 60*time.Second); err != nil {
		return err
	}
	fstype := cmd["rootfstype"]
	if fstype == "" {
		fstype = "ext4"
	}
	flags := uintptr(unix.MS_RDONLY)
	if _, rw := cmd["rw"]; rw {
		flags = 0
	}
	if err := os.MkdirAll("/newroot", 0o755); err != nil {
		return err
	}
	if err := unix.Mount(root, "/newroot", fstype, flags, cmd["rootflags"]); err != nil {
		return fmt.Errorf("mount %s (%s) on /: %w", root, fstype, err)
	}
	logf("mounted %s (%s) as the root; starting /sbin/init", root, fstype)
	// The new root's init mounts /proc and /sys itself; /dev moves over.
	unix.Unmount("/proc", unix.MNT_DETACH)
	unix.Unmount("/sys", unix.MNT_DETACH)
	if err := unix.Mount("/dev", "/newroot/dev", "", unix.MS_MOVE, ""); err != nil {
		unix.Unmount("/dev", unix.MNT_DETACH)
	}
	if err := os.Chdir("/newroot"); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("moving the root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return err
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	init := "/sbin/init"
	return unix.Exec(init, append([]string{init}, os.Args[1:]...), os.Environ())
}

// loadModules loads every module the config lists, in order; one the kernel already has
// (built in, or loaded) is not an error.
func loadModules(config string) error {
	f, err := os.Open(config)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		kind, p, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok || kind != "module" {
			continue
		}
		m, err := os.Open(p)
		if err != nil {
			return err
		}
		flags := 0
		if strings.HasSuffix(p, ".xz") || strings.HasSuffix(p, ".zst") || strings.HasSuffix(p, ".gz") {
			flags = unix.MODULE_INIT_COMPRESSED_FILE
		}
		err = unix.FinitModule(int(m.Fd()), "", flags)
		m.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("loading %s: %w", filepath.Base(p), err)
		}
	}
	return sc.Err()
}

// waitFor waits for a device node to appear (devtmpfs makes it when the driver finds the disk).
func waitFor(dev string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(dev); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear in %s", dev, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ParseCmdline splits a kernel command line into its parameters (a quoted value keeps its
// spaces; a parameter without = maps to "").
func ParseCmdline(s string) map[string]string {
	out := map[string]string{}
	var word strings.Builder
	quoted := false
	flush := func() {
		if word.Len() == 0 {
			return
		}
		k, v, _ := strings.Cut(word.String(), "=")
		out[k] = v
		word.Reset()
	}
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case !quoted && (r == ' ' || r == '\n' || r == '\t'):
			flush()
		default:
			word.WriteRune(r)
		}
	}
	flush()
	return out
}

// DMDevice is one device of dm-mod.create= (Documentation/admin-guide/device-mapper/dm-init.rst):
// name,uuid,minor,flags,table[,table…], devices separated by ";".
type DMDevice struct {
	Name, UUID string
	ReadOnly   bool
	Targets    []DMTarget
}

// DMTarget is one table line: start sector, sectors, target type, its arguments.
type DMTarget struct {
	Start, Length uint64
	Type, Args    string
}

// ParseDMCreate parses the value of dm-mod.create=.
func ParseDMCreate(s string) ([]DMDevice, error) {
	var out []DMDevice
	for _, dev := range strings.Split(s, ";") {
		f := strings.Split(dev, ",")
		if len(f) < 5 {
			return nil, fmt.Errorf("%q: want name,uuid,minor,flags,table", dev)
		}
		d := DMDevice{Name: f[0], UUID: f[1]}
		if d.Name == "" || len(d.Name) >= 128 || len(d.UUID) >= 129 {
			return nil, fmt.Errorf("%q: a name of 1 to 127 bytes and a uuid of at most 128", dev)
		}
		switch f[3] {
		case "ro":
			d.ReadOnly = true
		case "rw":
		default:
			return nil, fmt.Errorf("%q: flags %q, want ro or rw", dev, f[3])
		}
		for _, tl := range f[4:] {
			var t DMTarget
			fields := strings.Fields(tl)
			if len(fields) < 3 {
				return nil, fmt.Errorf("table %q: want start length type args", tl)
			}
			if _, err := fmt.Sscan(fields[0]+" "+fields[1], &t.Start, &t.Length); err != nil {
				return nil, fmt.Errorf("table %q: %w", tl, err)
			}
			t.Type, t.Args = fields[2], strings.Join(fields[3:], " ")
			if len(t.Type) >= 16 {
				return nil, fmt.Errorf("table %q: target type too long", tl)
			}
			d.Targets = append(d.Targets, t)
		}
		out = append(out, d)
	}
	return out, nil
}

// devicesOf are the device paths a target's arguments name.
func devicesOf(t DMTarget) []string {
	var out []string
	for _, a := range strings.Fields(t.Args) {
		if strings.HasPrefix(a, "/dev/") {
			out = append(out, a)
		}
	}
	return out
}

// The device-mapper ioctls (linux/dm-ioctl.h): struct dm_ioctl is 312 bytes, struct
// dm_target_spec 40.
const (
	dmIoctlSize      = 312
	dmTargetSpecSize = 40
	dmReadOnlyFlag   = 1 << 0
	dmDevCreate      = 0xc138fd03
	dmDevSuspend     = 0xc138fd06
	dmTableLoad      = 0xc138fd09
)

// createDM creates, loads and resumes one device through /dev/mapper/control.
func createDM(d DMDevice) error {
	ctl, err := os.OpenFile("/dev/mapper/control", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer ctl.Close()
	var flags uint32
	if d.ReadOnly {
		flags = dmReadOnlyFlag
	}
	if err := dmIoctl(ctl, dmDevCreate, dmHeader(d, 0, flags), nil); err != nil {
		return fmt.Errorf("DM_DEV_CREATE: %w", err)
	}
	var table []byte
	for i, t := range d.Targets {
		params := append([]byte(t.Args), 0)
		n := dmTargetSpecSize + len(params)
		n = (n + 7) &^ 7
		spec := make([]byte, n)
		le := binary.LittleEndian
		le.PutUint64(spec[0:], t.Start)
		le.PutUint64(spec[8:], t.Length)
		if i < len(d.Targets)-1 {
			le.PutUint32(spec[20:], uint32(n)) // next: from this spec to the next
		}
		copy(spec[24:40], t.Type)
		copy(spec[40:], params)
		table = append(table, spec...)
	}
	if err := dmIoctl(ctl, dmTableLoad, dmHeader(d, uint32(len(d.Targets)), flags), table); err != nil {
		return fmt.Errorf("DM_TABLE_LOAD: %w", err)
	}
	// DM_DEV_SUSPEND without DM_SUSPEND_FLAG resumes: the loaded table goes live.
	if err := dmIoctl(ctl, dmDevSuspend, dmHeader(d, 0, 0), nil); err != nil {
		return fmt.Errorf("DM_DEV_SUSPEND (resume): %w", err)
	}
	return nil
}

// dmHeader is a struct dm_ioctl for d: version 4.0.0, target_count, flags, name and uuid
// (data_size and data_start are set by dmIoctl).
func dmHeader(d DMDevice, targets, flags uint32) []byte {
	b := make([]byte, dmIoctlSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], 4) // version: 4.0.0
	le.PutUint32(b[20:], targets)
	le.PutUint32(b[28:], flags)
	copy(b[48:48+127], d.Name)
	copy(b[176:176+128], d.UUID)
	return b
}

// dmIoctl sends header and data (the table's target specs), the data right after the header.
func dmIoctl(ctl *os.File, req uintptr, header, data []byte) error {
	buf := append(header, data...)
	binary.LittleEndian.PutUint32(buf[12:], uint32(len(buf))) // data_size
	binary.LittleEndian.PutUint32(buf[16:], dmIoctlSize)      // data_start
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, ctl.Fd(), req, uintptr(unsafe.Pointer(&buf[0])))
	if errno != 0 {
		return errno
	}
	return nil
}
