package main

import "golang.org/x/sys/unix"

// settle writes back whatever the file system holding dir still has
// dirty (syncfs): a run's untimed setup (prewrite) and the previous run's
// removals, so that their write-back does not land in the timed part.
func settle(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}
