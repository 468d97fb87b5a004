using System.Runtime.InteropServices;
using Google.Protobuf;

namespace JestMesh.Protos.V1;

/// <summary>Bulk conversions between <see cref="Tensor"/> bytes and float32 arrays, with shape checks.</summary>
public sealed partial class Tensor
{
    /// <summary>A float32 tensor of the given shape holding <paramref name="values"/> (one bulk copy).</summary>
    public static Tensor FromFloat32(ReadOnlySpan<float> values, params ReadOnlySpan<long> shape)
    {
        long count = 1;
        foreach (var dim in shape)
        {
            if (dim < 0)
            {
                throw new ArgumentException($"Tensor shape [{string.Join(", ", shape.ToArray())}] has a negative dimension.", nameof(shape));
            }
            count *= dim;
        }
        if (count != values.Length)
        {
            throw new ArgumentException($"Tensor shape [{string.Join(", ", shape.ToArray())}] needs {count} values, got {values.Length}.", nameof(values));
        }
        var tensor = new Tensor { Dtype = DType.Float32 };
        tensor.Shape.Add(shape.ToArray());
        // Wire format is little-endian; every platform .NET runs JestMesh on is too.
        tensor.Data = BitConverter.IsLittleEndian
            ? ByteString.CopyFrom(MemoryMarshal.AsBytes(values))
            : throw new PlatformNotSupportedException("Tensor bytes are little-endian.");
        return tensor;
    }

    /// <summary>
    /// The values of a float32 tensor, checked against the expected rank and (where not negative)
    /// dimensions. Throws <see cref="InvalidDataException"/> naming <paramref name="what"/> otherwise.
    /// </summary>
    public float[] ToFloat32(string what, params ReadOnlySpan<long> expectedShape)
    {
        if (Dtype != DType.Float32)
        {
            throw new InvalidDataException($"{what}: dtype is {Dtype}, expected Float32.");
        }
        if (Shape.Count != expectedShape.Length)
        {
            throw new InvalidDataException($"{what}: shape [{ShapeText()}] has rank {Shape.Count}, expected {expectedShape.Length}.");
        }
        long count = 1;
        for (var i = 0; i < expectedShape.Length; i++)
        {
            if (Shape[i] < 0 || (expectedShape[i] >= 0 && Shape[i] != expectedShape[i]))
            {
                throw new InvalidDataException($"{what}: shape [{ShapeText()}], expected [{string.Join(", ", expectedShape.ToArray().Select(d => d < 0 ? "*" : d.ToString()))}].");
            }
            count *= Shape[i];
        }
        if (Data.Length != count * sizeof(float))
        {
            throw new InvalidDataException($"{what}: {Data.Length} data bytes for shape [{ShapeText()}], expected {count * sizeof(float)}.");
        }
        var values = new float[count];
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("Tensor bytes are little-endian.");
        }
        Data.Span.CopyTo(MemoryMarshal.AsBytes(values.AsSpan()));
        return values;
    }

    /// <summary>The shape for a message: at most 8 dimensions (a client may send thousands).</summary>
    private string ShapeText() =>
        Shape.Count <= 8 ? string.Join(", ", Shape) : string.Join(", ", Shape.Take(8)) + $", … ({Shape.Count} dims)";

    /// <summary>True when every value is finite (no NaN or infinity); checked on the raw bytes.</summary>
    public static bool AllFinite(ReadOnlySpan<float> values)
    {
        foreach (var v in values)
        {
            if (!float.IsFinite(v))
            {
                return false;
            }
        }
        return true;
    }
}
