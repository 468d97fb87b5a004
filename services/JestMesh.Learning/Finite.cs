using System.Numerics.Tensors;

namespace JestMesh.Learning;

/// <summary>Finiteness checks on plain arrays.</summary>
internal static class Finite
{
    /// <summary>True when no value is NaN or infinite (MaxMagnitude propagates NaN and keeps infinity).</summary>
    public static bool All(ReadOnlySpan<float> values) => values.IsEmpty || float.IsFinite(TensorPrimitives.MaxMagnitude(values));
}
