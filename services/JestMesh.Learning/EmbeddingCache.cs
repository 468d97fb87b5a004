using System.Runtime.InteropServices;
using System.Text;

namespace JestMesh.Learning;

/// <summary>
/// Reference embeddings by example id, bounded: the reference never changes, so an entry is valid
/// forever and the oldest is dropped when full (first in, first out; O(1), no per-hit bookkeeping).
/// Rows live in two preallocated slabs, so a hit is two span copies.
/// </summary>
public sealed class EmbeddingCache
{
    private const string Magic = "JMEC1";
    private readonly Dictionary<long, int> _slots;
    private readonly long[] _ids;
    private readonly float[] _image;
    private readonly float[] _text;
    private readonly Lock _gate = new();
    private readonly Lock _saveGate = new();
    private int _next;
    private int _count;
    private long _version;
    private long _savedVersion;

    public EmbeddingCache(int capacity, int dim)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        ArgumentOutOfRangeException.ThrowIfLessThan(dim, 1);
        Capacity = capacity;
        Dim = dim;
        _slots = new Dictionary<long, int>(capacity);
        _ids = new long[capacity];
        _image = new float[(long)capacity * dim];
        _text = new float[(long)capacity * dim];
    }

    public int Capacity { get; }

    public int Dim { get; }

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _count;
            }
        }
    }

    /// <summary>Copies the cached rows of <paramref name="id"/> into the destinations; false on a miss.</summary>
    public bool TryGet(long id, Span<float> image, Span<float> text)
    {
        lock (_gate)
        {
            if (!_slots.TryGetValue(id, out var slot))
            {
                return false;
            }
            _image.AsSpan(slot * Dim, Dim).CopyTo(image);
            _text.AsSpan(slot * Dim, Dim).CopyTo(text);
            return true;
        }
    }

    public void Add(long id, ReadOnlySpan<float> image, ReadOnlySpan<float> text)
    {
        if (Capacity == 0)
        {
            return;
        }
        if (image.Length != Dim || text.Length != Dim)
        {
            throw new ArgumentException($"cache rows are {Dim} wide, got {image.Length} and {text.Length}.", nameof(image));
        }
        lock (_gate)
        {
            if (_slots.TryGetValue(id, out var existing))
            {
                image.CopyTo(_image.AsSpan(existing * Dim, Dim));
                text.CopyTo(_text.AsSpan(existing * Dim, Dim));
                return;
            }
            var slot = _next;
            if (_count == Capacity)
            {
                _slots.Remove(_ids[slot]);
            }
            else
            {
                _count++;
            }
            _ids[slot] = id;
            _slots[id] = slot;
            _version++;
            image.CopyTo(_image.AsSpan(slot * Dim, Dim));
            text.CopyTo(_text.AsSpan(slot * Dim, Dim));
            _next = (slot + 1) % Capacity;
        }
    }

    /// <summary>True when entries were added since the last <see cref="Save"/> (or load).</summary>
    public bool HasUnsavedChanges
    {
        get
        {
            lock (_gate)
            {
                return _version != _savedVersion;
            }
        }
    }

    /// <summary>
    /// Writes the cache, tagged with the checkpoint hash, atomically (temp file + rename). The rows
    /// are copied under the lock and written outside it, so scoring goes on while the file is written.
    /// </summary>
    public void Save(string path, string checkpointSha256)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        // One writer at a time (the periodic save and the one at stop share the temp file).
        lock (_saveGate)
        {
            SaveLocked(path, checkpointSha256);
        }
    }

    private void SaveLocked(string path, string checkpointSha256)
    {
        long[] ids;
        float[] image, text;
        long version;
        lock (_gate)
        {
            // Oldest first, so a reload keeps the eviction order.
            ids = new long[_count];
            image = new float[(long)_count * Dim];
            text = new float[(long)_count * Dim];
            var start = _count == Capacity ? _next : 0;
            for (var k = 0; k < _count; k++)
            {
                var slot = (start + k) % Math.Max(1, Capacity);
                ids[k] = _ids[slot];
                _image.AsSpan(slot * Dim, Dim).CopyTo(image.AsSpan(k * Dim, Dim));
                _text.AsSpan(slot * Dim, Dim).CopyTo(text.AsSpan(k * Dim, Dim));
            }
            version = _version;
        }
        var temp = path + ".tmp";
        using (var stream = File.Create(temp))
        using (var writer = new BinaryWriter(stream, Encoding.UTF8))
        {
            writer.Write(Magic);
            writer.Write(checkpointSha256);
            writer.Write(Dim);
            writer.Write(ids.Length);
            for (var k = 0; k < ids.Length; k++)
            {
                writer.Write(ids[k]);
                writer.Write(MemoryMarshal.AsBytes(image.AsSpan(k * Dim, Dim)));
                writer.Write(MemoryMarshal.AsBytes(text.AsSpan(k * Dim, Dim)));
            }
        }
        File.Move(temp, path, overwrite: true);
        lock (_gate)
        {
            _savedVersion = Math.Max(_savedVersion, version);
        }
    }

    /// <summary>
    /// Loads rows saved by <see cref="Save"/> for the same checkpoint; a file of another checkpoint or
    /// width is ignored (the embeddings would be wrong), and the method says why.
    /// </summary>
    public string Load(string path, string checkpointSha256)
    {
        if (!File.Exists(path))
        {
            return $"no cache file at {path}";
        }
        using var stream = File.OpenRead(path);
        using var reader = new BinaryReader(stream, Encoding.UTF8);
        if (reader.ReadString() != Magic)
        {
            return $"{path} is not an embedding cache file";
        }
        var sha = reader.ReadString();
        var dim = reader.ReadInt32();
        if (!string.Equals(sha, checkpointSha256, StringComparison.OrdinalIgnoreCase) || dim != Dim)
        {
            return $"{path} belongs to checkpoint {sha} (d = {dim}), not {checkpointSha256} (d = {Dim}); ignored";
        }
        var count = reader.ReadInt32();
        var image = new float[Dim];
        var text = new float[Dim];
        for (var k = 0; k < count; k++)
        {
            var id = reader.ReadInt64();
            reader.BaseStream.ReadExactly(MemoryMarshal.AsBytes(image.AsSpan()));
            reader.BaseStream.ReadExactly(MemoryMarshal.AsBytes(text.AsSpan()));
            Add(id, image, text);
        }
        lock (_gate)
        {
            _savedVersion = _version;
        }
        return $"loaded {count} cached embeddings from {path}";
    }
}
