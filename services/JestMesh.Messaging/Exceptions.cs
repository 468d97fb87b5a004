namespace JestMesh.Messaging;

/// <summary>A message that can never be processed (bad bytes, wrong shape, NaN): it goes to the dead-letter exchange.</summary>
public sealed class PoisonMessageException : Exception
{
    public PoisonMessageException() : base("poison message") { }

    public PoisonMessageException(string reason) : base(reason) { }

    public PoisonMessageException(string reason, Exception innerException) : base(reason, innerException) { }
}

/// <summary>The broker refused a publish (negative confirm), e.g. because the bounded queue is full.</summary>
public sealed class PublishRejectedException : Exception
{
    public PublishRejectedException() : base("publish rejected") { }

    public PublishRejectedException(string message) : base(message) { }

    public PublishRejectedException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>The broker returned a mandatory publish as unroutable: its queue or exchange does not exist.</summary>
public sealed class PublishUnroutableException : InvalidOperationException
{
    public PublishUnroutableException() : base("publish returned unroutable") { }

    public PublishUnroutableException(string message) : base(message) { }

    public PublishUnroutableException(string message, Exception innerException) : base(message, innerException) { }
}
