namespace JestMesh.Learning;

/// <summary>A curation request the core refuses; hosts map each kind to their transport's status in one place.</summary>
public abstract class CurationException : Exception
{
    protected CurationException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}

/// <summary>The caller's input is wrong (settings out of range, scores of the wrong shape, NaN, rows not normalised): its fault, retrying the same input cannot help.</summary>
public sealed class InvalidCurationInputException : CurationException
{
    public InvalidCurationInputException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}

/// <summary>The input is well formed but does not fit the data (for example chunks that do not divide the batch of this super-batch).</summary>
public sealed class CurationPreconditionException : CurationException
{
    public CurationPreconditionException(string message)
        : base(message)
    {
    }
}
