using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace JestMesh.Data.WebDataset;

/// <summary>
/// Example ids of WebDataset samples, derived from where the sample lives so they are the same in
/// every run, process and machine: the first 8 bytes (big-endian) of SHA-256 over the UTF-8 text
/// "SHARD/KEY" (SHARD the shard's file name without directory, KEY the sample key inside it), with
/// the sign bit cleared. Two different keys colliding is a 2^-63 event per pair; the source checks
/// and skips (counts) a sample whose id it has already streamed in the same epoch.
/// </summary>
public static class SourceKeys
{
    public static long Id(string shard, string key)
    {
        ArgumentNullException.ThrowIfNull(shard);
        ArgumentNullException.ThrowIfNull(key);
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(shard + "/" + key), hash);
        return (long)(BinaryPrimitives.ReadUInt64BigEndian(hash) & 0x7FFF_FFFF_FFFF_FFFFUL);
    }

    /// <summary>"SHARD/KEY", as `score` writes it to keys.txt.</summary>
    public static string Name(string shard, string key) => shard + "/" + key;
}
