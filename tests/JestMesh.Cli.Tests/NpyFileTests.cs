using System.Buffers.Binary;
using System.Text;
using JestMesh.Data;

namespace JestMesh.Cli.Tests;

[Trait("Tier", "Unit")]
public sealed class NpyFileTests : IDisposable
{
    // Bytes written by numpy 1.24.2's np.save, captured once so the tests need no Python.
    private const string NumpyFloat32Matrix = "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAMA/AAAAwAAAgD4AAEBAAACAQArXo7s=";
    private const string NumpyInt64Vector = "k05VTVBZAQB2AHsnZGVzY3InOiAnPGk4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDQsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoHAAAAAAAAAAAAAAAAAAAA/f////////8AAAAAAAEAAA==";
    private const string NumpyFloat32Vector = "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDMsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAA/AACAPwAAAEA=";

    private readonly string _dir = Directory.CreateTempSubdirectory("jestmesh-npy-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Reads_numpy_written_float32_arrays()
    {
        var (data, shape) = NpyFile.ReadFloat32(Save("m.npy", Convert.FromBase64String(NumpyFloat32Matrix)));
        Assert.Equal(new[] { 2, 3 }, shape);
        Assert.Equal(new[] { 1.5f, -2f, 0.25f, 3f, 4f, -5e-3f }, data);
        (data, shape) = NpyFile.ReadFloat32(Save("v.npy", Convert.FromBase64String(NumpyFloat32Vector)));
        Assert.Equal(new[] { 3 }, shape);
        Assert.Equal(new[] { 0.5f, 1f, 2f }, data);
    }

    [Fact]
    public void Writes_the_same_bytes_as_numpy()
    {
        string i8 = Path.Combine(_dir, "i.npy");
        NpyFile.WriteInt64(i8, [7, 0, -3, 1L << 40], 4);
        Assert.Equal(Convert.FromBase64String(NumpyInt64Vector), File.ReadAllBytes(i8));
        string f4 = Path.Combine(_dir, "f.npy");
        NpyFile.WriteFloat32(f4, [1.5f, -2f, 0.25f, 3f, 4f, -5e-3f], 2, 3);
        Assert.Equal(Convert.FromBase64String(NumpyFloat32Matrix), File.ReadAllBytes(f4));
    }

    [Fact]
    public void Round_trips_int64_and_float32()
    {
        string path = Path.Combine(_dir, "r.npy");
        var values = Enumerable.Range(0, 1000).Select(i => (long)i * 31).ToArray();
        NpyFile.WriteInt64(path, values, 1000);
        var (read, shape) = NpyFile.ReadInt64(path);
        Assert.Equal(values, read);
        Assert.Equal(new[] { 1000 }, shape);
        var floats = Enumerable.Range(0, 120).Select(i => i / 7f).ToArray();
        NpyFile.WriteFloat32(path, floats, 10, 12);
        var (f, s) = NpyFile.ReadFloat32(path);
        Assert.Equal(floats, f);
        Assert.Equal(new[] { 10, 12 }, s);
    }

    [Fact]
    public void Reads_format_version_2_and_headers_without_a_trailing_comma()
    {
        var payload = new byte[8];
        BinaryPrimitives.WriteSingleLittleEndian(payload, 1.25f);
        BinaryPrimitives.WriteSingleLittleEndian(payload.AsSpan(4), -4f);
        var (data, shape) = NpyFile.ReadFloat32(Save("v2.npy", Build("{\"descr\": '<f4', 'fortran_order': False, 'shape': (1, 2)}", payload, major: 2)));
        Assert.Equal(new[] { 1, 2 }, shape);
        Assert.Equal(new[] { 1.25f, -4f }, data);
    }

    [Theory]
    [InlineData("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16, "dtype is '<f8'")]
    [InlineData("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8, "dtype is '>f4'")]
    [InlineData("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 1), }", 8, "fortran_order is True")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 8, "truncated data")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 8, "unexpected bytes")]
    [InlineData("{'descr': '<f4', 'shape': (2,), }", 8, "no 'fortran_order'")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", 8, "unexpected header key 'extra'")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", 8, "malformed header")]
    public void Rejects_what_is_not_a_little_endian_float32_C_array(string header, int payloadBytes, string expected)
    {
        string path = Save("bad.npy", Build(header, new byte[payloadBytes]));
        var e = Assert.Throws<NpyFormatException>(() => NpyFile.ReadFloat32(path));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Rejects_bad_magic_unknown_versions_and_missing_files()
    {
        Assert.Contains("magic", Assert.Throws<NpyFormatException>(() => NpyFile.ReadFloat32(Save("x.npy", Encoding.ASCII.GetBytes("not numpy at all")))).Message, StringComparison.Ordinal);
        Assert.Contains("version 3.0", Assert.Throws<NpyFormatException>(() => NpyFile.ReadFloat32(Save("y.npy", Build("{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }", [], major: 3)))).Message, StringComparison.Ordinal);
        Assert.Contains("not found", Assert.Throws<NpyFormatException>(() => NpyFile.ReadFloat32(Path.Combine(_dir, "absent.npy"))).Message, StringComparison.Ordinal);
    }

    /// <summary>A .npy file byte by byte, as the format specification lays it out.</summary>
    internal static byte[] Build(string header, byte[] payload, int major = 1)
    {
        int prefix = major == 1 ? 10 : 12;
        string padded = header.PadRight(((prefix + header.Length + 1 + 63) / 64 * 64) - prefix - 1) + "\n";
        var bytes = new List<byte> { 0x93 };
        bytes.AddRange("NUMPY"u8.ToArray());
        bytes.Add((byte)major);
        bytes.Add(0);
        if (major == 1)
        {
            bytes.Add((byte)(padded.Length & 0xFF));
            bytes.Add((byte)(padded.Length >> 8));
        }
        else
        {
            bytes.AddRange(BitConverter.GetBytes(padded.Length));
        }

        bytes.AddRange(Encoding.ASCII.GetBytes(padded));
        bytes.AddRange(payload);
        return [.. bytes];
    }

    private string Save(string name, byte[] bytes)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }
}
