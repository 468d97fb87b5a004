using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace JestMesh.ServiceDefaults;

/// <summary>Binds an options class to a configuration section and validates it when the host starts.</summary>
public static class ValidatedOptions
{
    /// <summary>
    /// Binds <typeparamref name="T"/> to <paramref name="sectionName"/>, validates its data annotations
    /// (and <see cref="IValidatableObject"/>) at start, and fails start with messages that name each
    /// bad setting by its configuration key, e.g. "Messaging:Prefetch: The field Prefetch must be ...".
    /// </summary>
    public static OptionsBuilder<T> AddValidatedOptions<T>(this IServiceCollection services, IConfiguration configuration, string sectionName)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddSingleton<IValidateOptions<T>>(new SectionValidator<T>(sectionName));
        return services.AddOptions<T>()
            .Bind(configuration.GetSection(sectionName), binder => binder.ErrorOnUnknownConfiguration = true)
            .ValidateOnStart();
    }

    /// <summary>The configuration-key-naming failures of <paramref name="options"/>, empty when valid.</summary>
    public static IReadOnlyList<string> Validate(object options, string sectionName)
    {
        ArgumentNullException.ThrowIfNull(options);
        var results = new List<ValidationResult>();
        var context = new ValidationContext(options);
        if (!Validator.TryValidateObject(options, context, results, validateAllProperties: true) && options is IValidatableObject validatable)
        {
            // The validator skips IValidatableObject once a property failed; report every bad setting at once.
            results.AddRange(validatable.Validate(context));
        }
        // Distinct: when no property failed, the validator already ran IValidatableObject itself.
        return results
            .Select(r => $"{sectionName}:{string.Join(",", r.MemberNames.DefaultIfEmpty("?"))}: {r.ErrorMessage}")
            .Distinct(StringComparer.Ordinal)
            .ToList();
    }

    private sealed class SectionValidator<T>(string sectionName) : IValidateOptions<T> where T : class
    {
        public ValidateOptionsResult Validate(string? name, T options)
        {
            var failures = ValidatedOptions.Validate(options, sectionName);
            return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
        }
    }
}
