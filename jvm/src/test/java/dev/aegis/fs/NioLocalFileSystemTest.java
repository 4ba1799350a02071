package dev.aegis.fs;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.FileNotFoundException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.EnumSet;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.CreateFlag;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileContext;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Options;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.permission.FsPermission;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NioLocalFileSystemTest {
  @TempDir java.nio.file.Path dir;

  private static Configuration conf() {
    Configuration conf = new Configuration(false);
    conf.set("fs.file.impl", NioLocalFileSystem.class.getName());
    conf.setBoolean("fs.file.impl.disable.cache", true);
    conf.set("fs.AbstractFileSystem.file.impl", NioLocalFs.class.getName());
    return conf;
  }

  private Path path(String name) {
    return new Path(dir.resolve(name).toUri());
  }

  @Test
  void setsPermissionsWithoutAShell() throws Exception {
    NioRawLocalFileSystem fs = new NioRawLocalFileSystem();
    fs.initialize(dir.toUri(), conf());
    java.nio.file.Path file = Files.writeString(dir.resolve("a"), "x");
    fs.setPermission(path("a"), new FsPermission((short) 0640));
    assertEquals("rw-r-----", PosixFilePermissions.toString(Files.getPosixFilePermissions(file)));
    assertThrows(FileNotFoundException.class, () -> fs.setPermission(path("missing"), new FsPermission((short) 0644)));
  }

  @Test
  void tellsLinksFromFiles() throws Exception {
    NioRawLocalFileSystem fs = new NioRawLocalFileSystem();
    fs.initialize(dir.toUri(), conf());
    Files.writeString(dir.resolve("target"), "hello");
    Files.createSymbolicLink(dir.resolve("link"), dir.resolve("target"));
    Files.createSymbolicLink(dir.resolve("dangling"), dir.resolve("gone"));
    FileStatus plain = fs.getFileLinkStatus(path("target"));
    assertFalse(plain.isSymlink());
    assertEquals(5, plain.getLen());
    FileStatus link = fs.getFileLinkStatus(path("link"));
    assertTrue(link.isSymlink());
    assertEquals(dir.resolve("target").toString(), link.getSymlink().toUri().getPath());
    assertTrue(fs.getFileLinkStatus(path("dangling")).isSymlink());
    assertThrows(FileNotFoundException.class, () -> fs.getFileLinkStatus(path("none")));
  }

  @Test
  void fileContextRenamesAtomicallyAndKeepsChecksums() throws Exception {
    Configuration conf = conf();
    FileContext fc = FileContext.getFileContext(dir.toUri(), conf);
    Path tmp = path("sub/.1.tmp");
    byte[] body = "batch 1".getBytes(StandardCharsets.UTF_8);
    try (FSDataOutputStream out = fc.create(tmp, EnumSet.of(CreateFlag.CREATE), Options.CreateOpts.createParent())) {
      out.write(body);
    }
    fc.rename(tmp, path("sub/1"), Options.Rename.NONE);
    assertTrue(Files.exists(dir.resolve("sub/.1.crc")), "the checksum file moves with it");
    fc.create(tmp, EnumSet.of(CreateFlag.CREATE), Options.CreateOpts.createParent()).close();
    assertThrows(org.apache.hadoop.fs.FileAlreadyExistsException.class,
        () -> fc.rename(tmp, path("sub/1"), Options.Rename.NONE));
    FileSystem fs = FileSystem.get(dir.toUri(), conf);
    assertTrue(fs instanceof NioLocalFileSystem);
    byte[] read = new byte[body.length];
    try (FSDataInputStream in = fs.open(path("sub/1"))) {
      in.readFully(read);
    }
    assertArrayEquals(body, read);
    assertTrue(fs.mkdirs(path("made/deep"), new FsPermission((short) 0750)));
    assertEquals("rwxr-x---",
        PosixFilePermissions.toString(Files.getPosixFilePermissions(dir.resolve("made/deep"))));
  }
}
