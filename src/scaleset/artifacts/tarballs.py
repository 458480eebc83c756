"""Unpacking an image version that arrived as a ``.tar.gz``.

Every member is checked before anything is written, so a refusal names the
member as it appears in the archive and leaves nothing on disk that the caller
must not already clean up. The checks (here and only here for archives):

* a member name may not be absolute nor contain a ``..`` component;
* only files, directories, symlinks and hard links: no devices or FIFOs;
* a symlink target may not be absolute nor climb out of the tree;
* a hard link must name a regular file that an earlier member already put in
  the tree;
* the archive's size, the bytes its files expand to and its number of entries
  stay within ``ArchiveLimits``, counted from the headers as they are read, so
  no more than the limit is ever decompressed and nothing is written before.

Extraction then runs with tarfile's ``data`` filter as a second line of defence:
it follows links already on disk, so it also catches a chain of links that only
escapes when taken together; ``tree.scan`` checks the result a third time.

An archive whose members all sit under one top-level directory (``webapp-1.1.0/
image.json``, as ``tar -czf x.tgz webapp-1.1.0`` makes) is unpacked with that
directory stripped; a flat one (``tar -C dir -czf x.tgz .``) as it is.
"""

from __future__ import annotations

import gzip
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from scaleset.artifacts.errors import ArtifactError
from scaleset.artifacts.limits import UNLIMITED, ArchiveLimits, too_large
from scaleset.artifacts.manifest import MANIFEST_NAME

# A header block, a pax header with its block and a file's padding: what an entry
# may add to the stream besides its data, in a legitimate archive.
_ENTRY_OVERHEAD = 4 * 512


def unpack(source: Path, dest: Path, limits: ArchiveLimits = UNLIMITED) -> None:
    """Check every member of the gzip tarball ``source``, then extract it into ``dest``.

    ``dest`` must be an empty directory. Raises ``ArtifactError`` naming the
    offending member, or the limit of ``limits`` the archive passes; ``dest``
    may then hold a partial tree, which the caller removes.
    """
    size = source.stat().st_size
    if size > limits.archive_bytes:
        raise too_large("the archive's size", limits.archive_bytes, size,
                        "max_image_archive_bytes", entry=source.name)
    try:
        with _BoundedGzip(source, limits) as stream, \
                tarfile.open(fileobj=stream, mode="r:") as archive:
            members = _members(archive, limits)
            plan = _plan(members)
            archive.errorlevel = 2  # raise on every problem; never extract part silently
            try:
                archive.extractall(dest, members=plan, filter="data")
            except tarfile.FilterError as exc:
                # Only reached through links already extracted (the plan caught the
                # rest), so the message says so rather than echo the temporary path.
                name = _original_name(members, exc.tarinfo)
                if exc.tarinfo.issym() or exc.tarinfo.islnk():
                    why = (f'its link target "{exc.tarinfo.linkname}" resolves outside the '
                           "image through other links; make it point to a file inside the image")
                else:
                    why = ("it would be written outside the image through a link; remove the "
                           "link or the member")
                raise ArtifactError(f'refused tar member "{name}": {why}', entry=name) from exc
            except (tarfile.ExtractError, OSError) as exc:
                raise ArtifactError(
                    f"could not unpack {source}: {exc}; check that the archive is a plain "
                    "tree of files, directories and links", entry=str(source)) from exc
    except (tarfile.ReadError, tarfile.CompressionError, gzip.BadGzipFile, EOFError,
            zlib.error) as exc:
        raise ArtifactError(
            f"{source} is neither a directory nor a readable gzip-compressed tarball "
            f"({exc}); pass an image directory or a .tar.gz/.tgz made with "
            "tar -czf", entry=str(source)) from exc


class _BoundedGzip(gzip.GzipFile):
    """The decompressed stream of ``source``, refused once read past what ``limits`` allow.

    The members' declared sizes bound the files (``_members``), but not what tarfile
    reads besides them: a pax or GNU long-name header may declare gigabytes, which
    tarfile reads into memory. So the stream itself stops at the expanded limit plus
    what headers and padding legitimately add per entry.
    """

    def __init__(self, source: Path, limits: ArchiveLimits) -> None:
        super().__init__(source, "rb")
        self._name = source.name
        self._limits = limits
        self._bound = limits.expanded_bytes + (limits.files + 1) * _ENTRY_OVERHEAD

    def read(self, size: int | None = -1) -> bytes:
        """Like ``GzipFile.read``; raises ``ArtifactError`` past the bound."""
        data = super().read(size)
        if self.tell() > self._bound:
            raise too_large("the expanded size in bytes", self._limits.expanded_bytes,
                            self.tell(), "max_image_expanded_bytes", entry=self._name)
        return data


def _members(archive: tarfile.TarFile, limits: ArchiveLimits) -> list[tarfile.TarInfo]:
    """The archive's members, read one header at a time and counted as they come.

    A member's header declares its size, and extraction writes exactly that many
    bytes, so the sum of the sizes read so far is what the tree would hold:
    refusing as soon as it (or the count) passes the limit means no more than
    the limit is ever decompressed, and nothing is written before the plan is
    complete.
    """
    members: list[tarfile.TarInfo] = []
    expanded = 0
    while (member := archive.next()) is not None:
        members.append(member)
        if len(members) > limits.files:
            raise too_large("the number of entries", limits.files, len(members),
                            "max_image_files", entry=member.name)
        if member.isreg():
            expanded += member.size
            if expanded > limits.expanded_bytes:
                raise too_large("the expanded size in bytes", limits.expanded_bytes, expanded,
                                "max_image_expanded_bytes", entry=member.name)
    # tarfile keeps every header it read; extractall below walks this same list.
    return members


def _plan(members: list[tarfile.TarInfo]) -> list[tarfile.TarInfo]:
    """The members to extract, checked and renamed to their place in the tree."""
    parts = [_parts(member) for member in members]
    prefix = _common_prefix(members, parts)
    plan: list[tarfile.TarInfo] = []
    files: set[PurePosixPath] = set()
    for member, member_parts in zip(members, parts, strict=True):
        if prefix and member_parts == (prefix,):
            continue  # the top-level directory itself: it becomes the tree's root
        rel = PurePosixPath(*member_parts[1:]) if prefix else PurePosixPath(*member_parts)
        if not member_parts or rel == PurePosixPath("."):
            if not member.isdir():
                raise _refuse(member, "it names the root of the archive but is not a directory")
            continue  # "./": the root, which already exists
        if member.issym():
            _check_symlink(member, rel)
            link = member.linkname
            files.discard(rel)
        elif member.islnk():
            link = _check_hardlink(member, prefix, files).as_posix()
            files.add(rel)
        elif member.isreg():
            link = member.linkname
            files.add(rel)
        elif member.isdir():
            link = member.linkname
            files.discard(rel)
        else:
            raise _refuse(member, f"it is a {_kind(member)}; an image may hold only files, "
                                  "directories and links: remove it from the archive")
        plan.append(member.replace(name=rel.as_posix(), linkname=link, deep=False))
    return plan


def _parts(member: tarfile.TarInfo) -> tuple[str, ...]:
    path = PurePosixPath(member.name)
    if path.is_absolute():
        raise _refuse(member, "absolute paths are not allowed; build the archive from inside "
                              "the image directory: tar -C DIR -czf image.tar.gz .")
    if ".." in path.parts:
        raise _refuse(member, '".." components are not allowed; build the archive from inside '
                              "the image directory: tar -C DIR -czf image.tar.gz .")
    return tuple(part for part in path.parts if part != ".")


def _common_prefix(members: list[tarfile.TarInfo], parts: list[tuple[str, ...]]) -> str | None:
    """The single top-level directory every member sits under, if there is one."""
    tops = {member_parts[0] for member_parts in parts if member_parts}
    if len(tops) != 1:
        return None
    (top,) = tops
    if top == MANIFEST_NAME:
        return None
    for member, member_parts in zip(members, parts, strict=True):
        if member_parts == (top,) and not member.isdir():
            return None  # a lone top-level file, not a folder to strip
    return top


def _check_symlink(member: tarfile.TarInfo, rel: PurePosixPath) -> None:
    target = PurePosixPath(member.linkname)
    if target.is_absolute():
        raise _refuse(member, f'its link target "{member.linkname}" is absolute, outside the '
                              "image; make it a relative link to a file inside the image")
    # Resolve lexically from the link's own directory; tarfile's data filter and
    # the final tree scan also resolve through links already on disk.
    depth = len(rel.parts) - 1
    for part in target.parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                raise _refuse(member, f'its link target "{member.linkname}" climbs out of the '
                                      "image; make it point to a file inside the image")
        elif part != ".":
            depth += 1


def _check_hardlink(member: tarfile.TarInfo, prefix: str | None,
                    files: set[PurePosixPath]) -> PurePosixPath:
    """The hard link's target within the tree, which an earlier member must have written."""
    target = PurePosixPath(member.linkname)
    if target.is_absolute() or ".." in target.parts:
        raise _refuse(member, f'its hard link target "{member.linkname}" is outside the image; '
                              "link only to files inside the image")
    parts = tuple(part for part in target.parts if part != ".")
    if prefix:
        if not parts or parts[0] != prefix:
            raise _refuse(member, f'its hard link target "{member.linkname}" is outside the '
                                  f'image folder "{prefix}"; link only to files inside it')
        parts = parts[1:]
    rel = PurePosixPath(*parts)
    if rel not in files:
        raise _refuse(member, f'its hard link target "{member.linkname}" is not a file that an '
                              "earlier member of the archive put in the image; add the file "
                              "before the link")
    return rel


def _refuse(member: tarfile.TarInfo, why: str) -> ArtifactError:
    return ArtifactError(f'refused tar member "{member.name}": {why}', entry=member.name)


def _kind(member: tarfile.TarInfo) -> str:
    if member.ischr():
        return "character device"
    if member.isblk():
        return "block device"
    if member.isfifo():
        return "FIFO"
    return f"special member (type {member.type!r})"


def _original_name(members: list[tarfile.TarInfo], renamed: tarfile.TarInfo) -> str:
    """The archive's own name for a member ``_plan`` renamed, for messages."""
    # A renamed member is a copy that keeps its header offset, unique in the archive.
    by_offset = {member.offset: member.name for member in members}
    return by_offset.get(renamed.offset, renamed.name)
