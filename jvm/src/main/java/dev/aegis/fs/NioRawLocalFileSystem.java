package dev.aegis.fs;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.attribute.PosixFilePermissions;

import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * Hadoop's raw local file system with its two shell-outs done through java.nio.
 *
 * <p>Without Hadoop's native library, {@code RawLocalFileSystem} forks {@code readlink} for every
 * {@code getFileLinkStatus} (each rename through {@code FileContext}: streaming checkpoints, Delta's
 * log store) and {@code chmod} for every {@code setPermission} (each file and directory it creates).
 * A fork of a multi-gigabyte JVM costs milliseconds; a micro-batch made about eighty of them.
 */
public class NioRawLocalFileSystem extends RawLocalFileSystem {

  @Override
  public FileStatus getFileLinkStatus(Path f) throws IOException {
    java.nio.file.Path local = pathToFile(f).toPath();
    if (!Files.isSymbolicLink(local)) {
      return getFileStatus(f);
    }
    Path target = new Path(Files.readSymbolicLink(local).toString());
    if (!Files.exists(local)) { // a dangling link
      return new FileStatus(0, false, 0, 0, 0, 0, FsPermission.getDefault(), "", "", target, f);
    }
    FileStatus status = getFileStatus(f);
    return new FileStatus(status.getLen(), false, status.getReplication(), status.getBlockSize(),
        status.getModificationTime(), status.getAccessTime(), status.getPermission(), status.getOwner(),
        status.getGroup(), target, f);
  }

  @Override
  public boolean supportsSymlinks() {
    return true;
  }

  @Override
  public void setPermission(Path p, FsPermission permission) throws IOException {
    if (permission.getStickyBit()) { // java.nio has no sticky bit
      super.setPermission(p, permission);
      return;
    }
    java.nio.file.Path local = pathToFile(p).toPath();
    if (!Files.exists(local, LinkOption.NOFOLLOW_LINKS)) {
      throw new FileNotFoundException("File " + p + " does not exist");
    }
    String symbolic = permission.getUserAction().SYMBOL + permission.getGroupAction().SYMBOL
        + permission.getOtherAction().SYMBOL;
    Files.setPosixFilePermissions(local, PosixFilePermissions.fromString(symbolic));
  }
}
