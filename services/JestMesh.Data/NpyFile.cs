using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace JestMesh.Data;

/// <summary>A file that is not the .npy array the caller asked for; the message says what was wrong, without the path.</summary>
public sealed class NpyFormatException(string message) : Exception(message);

/// <summary>A strict reader and writer for NumPy .npy files (format versions 1.0 and 2.0), little-endian float32 and int64, C order.</summary>
public static class NpyFile
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Reads a '&lt;f4' C-order array.</summary>
    public static (float[] Data, int[] Shape) ReadFloat32(string path)
    {
        var (bytes, offset, shape) = Open(path, "<f4", "float32");
        var data = new float[(bytes.Length - offset) / 4];
        MemoryMarshal.Cast<byte, float>(bytes.AsSpan(offset)).CopyTo(data);
        return (data, shape);
    }

    /// <summary>Reads a '&lt;i8' C-order array.</summary>
    public static (long[] Data, int[] Shape) ReadInt64(string path)
    {
        var (bytes, offset, shape) = Open(path, "<i8", "int64");
        var data = new long[(bytes.Length - offset) / 8];
        MemoryMarshal.Cast<byte, long>(bytes.AsSpan(offset)).CopyTo(data);
        return (data, shape);
    }

    public static void WriteFloat32(string path, ReadOnlySpan<float> data, params int[] shape) =>
        Write(path, "<f4", MemoryMarshal.AsBytes(data), data.Length, shape);

    public static void WriteInt64(string path, ReadOnlySpan<long> data, params int[] shape) =>
        Write(path, "<i8", MemoryMarshal.AsBytes(data), data.Length, shape);

    /// <summary>The header dictionary NumPy writes, e.g. {'descr': '&lt;f4', 'fortran_order': False, 'shape': (3, 4), }.</summary>
    public static string Header(string descr, IReadOnlyList<int> shape)
    {
        string dims = shape.Count == 1 ? $"{shape[0]}," : string.Join(", ", shape);
        return $"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}";
    }

    private static void Write(string path, string descr, ReadOnlySpan<byte> payload, int count, int[] shape)
    {
        long product = 1;
        foreach (int d in shape)
        {
            product *= d;
        }

        if (product != count)
        {
            throw new ArgumentException($"shape ({string.Join(", ", shape)}) holds {product} values but {count} were given.", nameof(shape));
        }

        string header = Header(descr, shape);
        // Version 1.0 unless the header outgrows its 16-bit length; data starts 64-byte aligned, as NumPy does.
        bool v1 = header.Length + 1 + 10 < ushort.MaxValue;
        int prefix = v1 ? 10 : 12;
        int total = prefix + header.Length + 1;
        int padded = (total + 63) / 64 * 64;
        header = header.PadRight(padded - prefix - 1) + "\n";
        using var stream = File.Create(path);
        stream.Write(Magic);
        stream.WriteByte(v1 ? (byte)1 : (byte)2);
        stream.WriteByte(0);
        Span<byte> length = stackalloc byte[4];
        if (v1)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(length, (ushort)header.Length);
            stream.Write(length[..2]);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(length, (uint)header.Length);
            stream.Write(length);
        }

        stream.Write(Encoding.ASCII.GetBytes(header));
        stream.Write(payload);
    }

    private static (byte[] Bytes, int Offset, int[] Shape) Open(string path, string descr, string typeName)
    {
        if (!File.Exists(path))
        {
            throw new NpyFormatException(Directory.Exists(path) ? "is a directory, not a .npy file" : "file not found");
        }

        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 10 || !bytes.AsSpan(0, 6).SequenceEqual(Magic))
        {
            throw new NpyFormatException("not a .npy file (missing the \\x93NUMPY magic)");
        }

        int major = bytes[6];
        int minor = bytes[7];
        int headerStart;
        long headerLength;
        if (major == 1)
        {
            headerStart = 10;
            headerLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8));
        }
        else if (major == 2 && bytes.Length >= 12)
        {
            headerStart = 12;
            headerLength = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8));
        }
        else
        {
            throw new NpyFormatException($"unsupported .npy format version {major}.{minor} (expected 1.0 or 2.0)");
        }

        if (headerStart + headerLength > bytes.Length)
        {
            throw new NpyFormatException($"truncated header: it claims {headerLength} bytes but the file has {bytes.Length - headerStart} after the prefix");
        }

        string header = Encoding.ASCII.GetString(bytes, headerStart, (int)headerLength);
        var (fileDescr, fortran, shape) = ParseHeader(header);
        if (fileDescr != descr)
        {
            throw new NpyFormatException($"dtype is '{fileDescr}'; expected '{descr}' ({typeName}, little-endian)");
        }

        if (fortran)
        {
            throw new NpyFormatException("fortran_order is True; expected C order (write numpy.ascontiguousarray(x))");
        }

        int offset = (int)(headerStart + headerLength);
        long count = 1;
        foreach (int d in shape)
        {
            count *= d;
        }

        long expected = count * (descr == "<f4" ? 4 : 8);
        long actual = bytes.Length - offset;
        if (actual < expected)
        {
            throw new NpyFormatException($"truncated data: shape ({string.Join(", ", shape)}) needs {expected} bytes but the file has {actual}");
        }

        if (actual > expected)
        {
            throw new NpyFormatException($"{actual - expected} unexpected bytes after the data of shape ({string.Join(", ", shape)})");
        }

        return (bytes, offset, shape);
    }

    /// <summary>Parses the Python dict literal of a .npy header: exactly the keys descr, fortran_order and shape.</summary>
    private static (string Descr, bool Fortran, int[] Shape) ParseHeader(string header)
    {
        var reader = new HeaderReader(header.TrimEnd(' ', '\n', '\0'));
        string? descr = null;
        bool? fortran = null;
        int[]? shape = null;
        reader.Expect('{');
        while (!reader.TryConsume('}'))
        {
            string key = reader.ReadString();
            reader.Expect(':');
            switch (key)
            {
                case "descr":
                    descr = reader.ReadString();
                    break;
                case "fortran_order":
                    fortran = reader.ReadBool();
                    break;
                case "shape":
                    shape = reader.ReadShape();
                    break;
                default:
                    throw new NpyFormatException($"unexpected header key '{key}'");
            }

            if (!reader.TryConsume(','))
            {
                reader.Expect('}');
                break;
            }
        }

        reader.ExpectEnd();
        return (descr ?? throw new NpyFormatException("header has no 'descr'"),
            fortran ?? throw new NpyFormatException("header has no 'fortran_order'"),
            shape ?? throw new NpyFormatException("header has no 'shape'"));
    }

    private ref struct HeaderReader(string text)
    {
        private int _pos;

        public void Expect(char c)
        {
            if (!TryConsume(c))
            {
                throw Error($"expected '{c}'");
            }
        }

        public bool TryConsume(char c)
        {
            SkipSpace();
            if (_pos < text.Length && text[_pos] == c)
            {
                _pos++;
                return true;
            }

            return false;
        }

        public void ExpectEnd()
        {
            SkipSpace();
            if (_pos != text.Length)
            {
                throw Error("unexpected text after the header dictionary");
            }
        }

        public string ReadString()
        {
            SkipSpace();
            if (_pos >= text.Length || (text[_pos] != '\'' && text[_pos] != '"'))
            {
                throw Error("expected a quoted string");
            }

            char quote = text[_pos++];
            int end = text.IndexOf(quote, _pos);
            if (end < 0)
            {
                throw Error("unterminated string");
            }

            string value = text[_pos..end];
            _pos = end + 1;
            return value;
        }

        public bool ReadBool()
        {
            SkipSpace();
            if (text.AsSpan(_pos).StartsWith("True", StringComparison.Ordinal))
            {
                _pos += 4;
                return true;
            }

            if (text.AsSpan(_pos).StartsWith("False", StringComparison.Ordinal))
            {
                _pos += 5;
                return false;
            }

            throw Error("expected True or False");
        }

        public int[] ReadShape()
        {
            Expect('(');
            var dims = new List<int>();
            while (!TryConsume(')'))
            {
                SkipSpace();
                int start = _pos;
                while (_pos < text.Length && char.IsAsciiDigit(text[_pos]))
                {
                    _pos++;
                }

                if (!int.TryParse(text.AsSpan(start, _pos - start), NumberStyles.None, CultureInfo.InvariantCulture, out int d))
                {
                    throw Error("expected a non-negative dimension");
                }

                dims.Add(d);
                if (!TryConsume(','))
                {
                    Expect(')');
                    break;
                }
            }

            return [.. dims];
        }

        private void SkipSpace()
        {
            while (_pos < text.Length && text[_pos] == ' ')
            {
                _pos++;
            }
        }

        private readonly NpyFormatException Error(string what) => new($"malformed header ({what} at character {_pos}): {text}");
    }
}
