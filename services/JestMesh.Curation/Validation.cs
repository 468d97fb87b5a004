using System.Numerics.Tensors;

namespace JestMesh.Curation;

/// <summary>Argument checks whose messages name the argument and the offending value.</summary>
internal static class Validation
{
    public static void RequireLength(float[] values, long expected, string paramName, string shape)
    {
        if (values.Length == 0)
        {
            throw new ArgumentException($"{paramName} is empty; expected {shape} = {expected} values.", paramName);
        }

        if (values.Length != expected)
        {
            throw new ArgumentException($"{paramName} has {values.Length} values; expected {shape} = {expected}.", paramName);
        }
    }

    /// <summary>Rejects NaN/±∞; a vectorised sum screens the common all-finite case before the element scan.</summary>
    public static void RequireFinite(ReadOnlySpan<float> values, int rowLength, string paramName)
    {
        // Inf or NaN anywhere makes the sum non-finite; finite values this large would also trip it,
        // and then the exact scan below decides.
        if (float.IsFinite(TensorPrimitives.Sum(values)))
        {
            return;
        }

        for (int i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                string where = rowLength > 1 ? $"{paramName}[{i / rowLength}, {i % rowLength}]" : $"{paramName}[{i}]";
                throw new ArgumentException($"{where} is {values[i]}; all values must be finite.", paramName);
            }
        }
    }

    public static void RequireFinite(float value, string paramName)
    {
        if (!float.IsFinite(value))
        {
            throw new ArgumentException($"{paramName} is {value}; it must be finite.", paramName);
        }
    }
}
