// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IConsentRegistry
/// @notice Patients' grants of access to their imaging studies, made by the patient directly, by a
/// delegate (guardian) the patient appointed, or by an EIP-712 signature that anyone may relay.
/// @dev A grant is keyed by (patient, grantee, scope). `scope` is an opaque study key
/// (`keccak256(sitePepper ‖ StudyInstanceUID)`, computed off chain) or `ALL_STUDIES`
/// (`bytes32(0)`) for every study of the patient. No personal data is ever stored or emitted.
///
/// Purposes are a bitmask over HL7 v3 PurposeOfUse codes (bit index: code):
///   0 TREAT   treatment
///   1 ETREAT  emergency treatment
///   2 HRESCH  healthcare research
///   3 PATRQT  patient requested
///   4 HPAYMT  healthcare payment
///   5 HOPERAT healthcare operations
///   6 PUBHLTH public health
/// Higher bits are reserved and rejected.
///
/// Trust model. Only the patient decides; everyone else is assumed dishonest:
/// - A relayer can submit a patient's signed message but not alter it (EIP-712, checked with
///   ECDSA for accounts and EIP-1271 for contract wallets). Every signed message carries
///   `issuedAt`, the chain time at which the patient's client signed it. Each grant slot keeps the
///   `issuedAt` of its current state: `block.timestamp` for a direct change (by the patient or a
///   delegate), the signature's `issuedAt` for a signed one. A signed grant applies only if it is
///   strictly newer than that state, so it is single-use and can never undo a later change
///   (direct or signed). `cancelSignatures` / `cancelBySig` void every outstanding grant signature
///   for a slot. A signature lives at most `MAX_SIGNATURE_LIFETIME` (30 days).
/// - Nobody can make a patient's revocation fail: `revoke` never reverts for a missing grant, and
///   `revokeBySig` never reverts because of another transaction (a stale revoke signature changes
///   nothing and emits `SignatureSuperseded`). A revoke signature never revokes a grant the
///   patient made after signing it; ties favour revocation.
/// - A delegate acts only inside its delegation: an active one (not expired, not removed), whose
///   scope is `ALL_STUDIES` or the grant's scope. It never grants to itself, every grant it makes
///   ends no later than the delegation, and each such grant records the delegation's id, so that
///   removing or replacing the delegation ends all of them at once. `DelegateActed` names it.
/// - A revoked grant is kept as a tombstone (`purposes == 0`, `issuedAt` kept), never deleted,
///   so an old signature cannot revive it.
///
/// The `isPermitted` rule, for (patient, grantee, studyKey, purpose) at the current block time:
/// 1. If `studyKey != ALL_STUDIES` and the study-scoped grant (patient, grantee, studyKey) is in
///    force, it alone decides: permitted iff its purpose bit is set, identified from it.
/// 2. Otherwise, if the patient excluded `studyKey` (`setExclusion`), not permitted.
/// 3. Otherwise the all-studies grant (patient, grantee, ALL_STUDIES) decides, if in force.
/// 4. Otherwise not permitted.
/// A grant is in force when `purposes != 0`, `notBefore <= now`, `expiresAt == 0` or
/// `now < expiresAt`, and, if a delegate made it, the delegation it records is still the
/// delegate's active one (same id, not removed, not expired). `identified` is true only together
/// with `permitted`. So the most specific grant decides: a de-identified grant for one study
/// narrows an identified all-studies grant, and an exclusion wins over the all-studies grant.
///
/// Actor rule: a change with no companion event (`SignatureUsed`, `DelegateActed`) in the same
/// transaction was made by the patient directly.
interface IConsentRegistry {
    /// @notice One grant slot (a live grant, or a tombstone after a revocation).
    /// @param purposes Bitmask of permitted purposes; 0 for a tombstone or an empty slot.
    /// @param identified True if identified data may be released; false means de-identified only.
    /// @param notBefore First second (unix time) at which the grant applies.
    /// @param expiresAt First second at which the grant no longer applies; 0 means no expiry.
    /// @param issuedAt Time of the slot's current state: `block.timestamp` of a direct change, or
    /// the `issuedAt` of the signed message that made it. Grant signatures not newer are void.
    /// @param delegation 0 if the patient made the grant (directly or by signature), else the id of
    /// the delegation whose delegate made it.
    struct Grant {
        uint32 purposes;
        bool identified;
        uint48 notBefore;
        uint48 expiresAt;
        uint48 issuedAt;
        uint32 delegation;
    }

    /// @notice Emitted when a grant is created or replaced.
    /// @param patient The patient whose studies the grant covers.
    /// @param grantee The account allowed access.
    /// @param scope The study key, or `ALL_STUDIES` (`bytes32(0)`) for all of the patient's studies.
    /// @param purposes Bitmask of permitted PurposeOfUse bits.
    /// @param identified True if identified data may be released.
    /// @param notBefore Unix time from which the grant applies.
    /// @param expiresAt Unix time at which the grant ends; 0 means never.
    event ConsentGranted(
        address indexed patient,
        address indexed grantee,
        bytes32 indexed scope,
        uint32 purposes,
        bool identified,
        uint48 notBefore,
        uint48 expiresAt
    );

    /// @notice Emitted when a grant is revoked (also when the slot held no live grant: the
    /// revocation is recorded as a tombstone all the same).
    /// @param patient The patient whose grant was revoked.
    /// @param grantee The account that loses access.
    /// @param scope The study key, or `ALL_STUDIES`, of the revoked grant.
    event ConsentRevoked(address indexed patient, address indexed grantee, bytes32 indexed scope);

    // Not indexed on purpose: these fields are read with the event, never searched by; three
    // indexed topics are the most an event has.
    /* solhint-disable gas-indexed-events */

    /// @notice Emitted when every outstanding grant signature for a slot issued at or before
    /// `issuedAt` is voided.
    /// @param patient The patient whose signatures were voided.
    /// @param grantee The grantee of the slot.
    /// @param scope The scope of the slot.
    /// @param issuedAt The slot's new `issuedAt`; grant signatures not newer can no longer be used.
    event SignaturesCancelled(address indexed patient, address indexed grantee, bytes32 indexed scope, uint48 issuedAt);

    /// @notice Emitted when a signed message changed a slot: the companion of the change's own
    /// event (`ConsentGranted`, `ConsentRevoked` or `SignaturesCancelled`).
    /// @param patient The patient who signed.
    /// @param grantee The grantee of the slot.
    /// @param scope The scope of the slot.
    /// @param issuedAt The signed `issuedAt`, now the slot's.
    /// @param relayer The account that submitted the signature.
    event SignatureUsed(
        address indexed patient, address indexed grantee, bytes32 indexed scope, uint48 issuedAt, address relayer
    );

    /// @notice Emitted when a valid revoke or cancel signature changed nothing because the slot is
    /// already newer than it (or, for a revoke, already revoked at that time).
    /// @param patient The patient who signed.
    /// @param grantee The grantee of the slot.
    /// @param scope The scope of the slot.
    /// @param issuedAt The signed `issuedAt`.
    event SignatureSuperseded(address indexed patient, address indexed grantee, bytes32 indexed scope, uint48 issuedAt);

    /// @notice Emitted when a patient appoints, replaces or removes a delegate (guardian).
    /// @param patient The patient the delegate acts for.
    /// @param delegate The appointed or removed account.
    /// @param scope The study key the delegate may act on, or `ALL_STUDIES`.
    /// @param expiresAt When the delegation ends; 0 means it was removed.
    /// @param delegation The new delegation id (a per-patient counter, from 1). Every call creates
    /// one, so grants made under the delegate's previous delegation end.
    event DelegateSet(
        address indexed patient, address indexed delegate, bytes32 scope, uint48 expiresAt, uint32 delegation
    );

    /// @notice Emitted when a delegate granted or revoked for a patient: the companion of the
    /// `ConsentGranted` or `ConsentRevoked` of `grantFor` / `revokeFor`.
    /// @param patient The patient the delegate acted for.
    /// @param delegate The delegate that acted.
    /// @param delegation The id of the delegation it acted under.
    event DelegateActed(address indexed patient, address indexed delegate, uint32 delegation);

    /// @notice Emitted when a patient excludes a study from, or readmits it to, their all-studies grants.
    /// @param patient The patient.
    /// @param studyKey The study key.
    /// @param excluded True if all-studies grants no longer cover the study.
    event ExclusionSet(address indexed patient, bytes32 indexed studyKey, bool excluded);

    /* solhint-enable gas-indexed-events */

    /// @notice Thrown when a grant names the zero address as grantee.
    error ConsentRegistryZeroGrantee();

    /// @notice Thrown when a purposes bitmask is empty or sets a reserved bit.
    /// @param purposes The rejected bitmask.
    error ConsentRegistryInvalidPurposes(uint32 purposes);

    /// @notice Thrown when a grant's `expiresAt` is set and is not after both `notBefore` and now,
    /// or a delegation's `expiresAt` is set and not in the future (`notBefore` is then 0).
    /// @param notBefore The requested start.
    /// @param expiresAt The requested end.
    error ConsentRegistryInvalidWindow(uint48 notBefore, uint48 expiresAt);

    /// @notice Thrown when `caller` acts for `patient` without an active delegation covering the scope.
    /// @param patient The patient the caller tried to act for.
    /// @param caller The account without such a delegation.
    error ConsentRegistryNotDelegate(address patient, address caller);

    /// @notice Thrown when a patient names the zero address or themselves as delegate.
    /// @param delegate The rejected delegate.
    error ConsentRegistryInvalidDelegate(address delegate);

    /// @notice Thrown when a signed message is submitted after its deadline.
    /// @param deadline The signed deadline (unix time), already past.
    error ConsentRegistryExpiredSignature(uint256 deadline);

    /// @notice Thrown when a signature was not made by `patient` over this exact message.
    /// @param patient The patient the signature was checked against.
    error ConsentRegistryInvalidSigner(address patient);

    /// @notice Thrown when a signed message claims to be issued after the current block time.
    /// @param issuedAt The signed `issuedAt`.
    error ConsentRegistrySignatureFromFuture(uint48 issuedAt);

    /// @notice Thrown when a signed message's deadline is more than `MAX_SIGNATURE_LIFETIME` after its `issuedAt`.
    /// @param issuedAt The signed `issuedAt`.
    /// @param deadline The signed deadline.
    error ConsentRegistrySignatureLifetimeTooLong(uint48 issuedAt, uint256 deadline);

    /// @notice Thrown when a grant signature is not newer than the slot's current state: it was
    /// used already, cancelled, or issued before a later change.
    /// @param issuedAt The signed `issuedAt`.
    /// @param current The slot's `issuedAt`.
    error ConsentRegistrySupersededSignature(uint48 issuedAt, uint48 current);

    /// @notice Thrown when a delegate tries to grant to itself.
    /// @param delegate The delegate.
    error ConsentRegistrySelfGrant(address delegate);

    /// @notice Thrown when a delegate's grant has no expiry or would outlive the delegation.
    /// @param scope The scope of the attempted grant.
    /// @param expiresAt The attempted grant's `expiresAt`.
    /// @param delegationExpiresAt When the delegation ends.
    error ConsentRegistryOutsideDelegation(bytes32 scope, uint48 expiresAt, uint48 delegationExpiresAt);

    /// @notice Thrown when `setExclusion` names `ALL_STUDIES` (`bytes32(0)`) instead of one study.
    error ConsentRegistryInvalidStudyKey();

    /// @notice Grants `grantee` access to the caller's studies in `scope`, replacing any existing
    /// grant for the same (caller, grantee, scope). Its `issuedAt` becomes the block time, which
    /// voids every grant signature for the slot issued until now.
    /// @param grantee The account allowed access.
    /// @param scope A study key, or `ALL_STUDIES` for all of the caller's studies.
    /// @param purposes Bitmask of PurposeOfUse bits (see the contract notes).
    /// @param identified True if identified data may be released.
    /// @param notBefore Unix time from which the grant applies (0 = now).
    /// @param expiresAt Unix time at which the grant ends (0 = never).
    function grant(
        address grantee,
        bytes32 scope,
        uint32 purposes,
        bool identified,
        uint48 notBefore,
        uint48 expiresAt
    ) external;

    /// @notice Revokes the caller's grant to `grantee` for `scope`. Never reverts: with no live
    /// grant it still records the revocation (a tombstone at the block time) and emits `ConsentRevoked`.
    /// @param grantee The account whose access ends.
    /// @param scope The scope of the grant: a study key, or `ALL_STUDIES`.
    function revoke(address grantee, bytes32 scope) external;

    /// @notice Voids every outstanding grant signature of the caller for (grantee, scope), leaving
    /// the grant's terms unchanged. Emits `SignaturesCancelled`.
    /// @param grantee The grantee of the slot.
    /// @param scope The scope of the slot.
    function cancelSignatures(address grantee, bytes32 scope) external;

    /// @notice Excludes one of the caller's studies from every all-studies grant, or lifts the exclusion.
    /// @dev A grant scoped to the study itself still decides (see the `isPermitted` rule).
    /// @param studyKey The study key; not `ALL_STUDIES`.
    /// @param excluded True to exclude, false to lift.
    function setExclusion(bytes32 studyKey, bool excluded) external;

    /// @notice Appoints, replaces or (with `expiresAt == 0`) removes a delegate who may grant and
    /// revoke for the caller within `scope` until `expiresAt`.
    /// @dev Each call creates a new delegation id, so every grant made under the delegate's
    /// previous delegation stops being in force.
    /// @param delegate The guardian's account; not the zero address and not the caller.
    /// @param scope A study key, or `ALL_STUDIES` for all of the caller's studies.
    /// @param expiresAt When the delegation ends; in the future, or 0 to remove it.
    function setDelegate(address delegate, bytes32 scope, uint48 expiresAt) external;

    /// @notice As `grant`, by a delegate of `patient`. Emits `DelegateActed`.
    /// @dev The caller needs an active delegation whose scope is `ALL_STUDIES` or `scope`
    /// (`ConsentRegistryNotDelegate`); `grantee` is not the caller (`ConsentRegistrySelfGrant`);
    /// `expiresAt` is set and not after the delegation's (`ConsentRegistryOutsideDelegation`).
    /// @param patient The patient the caller acts for.
    /// @param grantee The account allowed access.
    /// @param scope A study key, or `ALL_STUDIES`.
    /// @param purposes Bitmask of PurposeOfUse bits.
    /// @param identified True if identified data may be released.
    /// @param notBefore Unix time from which the grant applies (0 = now).
    /// @param expiresAt Unix time at which the grant ends; required.
    function grantFor(
        address patient,
        address grantee,
        bytes32 scope,
        uint32 purposes,
        bool identified,
        uint48 notBefore,
        uint48 expiresAt
    ) external;

    /// @notice As `revoke`, by a delegate of `patient`. Emits `DelegateActed`.
    /// @dev The caller needs an active delegation whose scope is `ALL_STUDIES` or `scope`
    /// (`ConsentRegistryNotDelegate`).
    /// @param patient The patient the caller acts for.
    /// @param grantee The account whose access ends.
    /// @param scope A study key, or `ALL_STUDIES`.
    function revokeFor(address patient, address grantee, bytes32 scope) external;

    /// @notice As `grant`, signed by `patient` off chain and relayed by anyone. Applies only if
    /// `issuedAt` is strictly newer than the slot's `issuedAt`, which it then becomes.
    /// Emits `ConsentGranted` and `SignatureUsed`.
    /// @dev Typed struct: `Grant(address patient,address grantee,bytes32 scope,uint32 purposes,
    /// bool identified,uint48 notBefore,uint48 expiresAt,uint48 issuedAt,uint256 deadline)`.
    /// Checks, in order: deadline, issuedAt not in the future, lifetime, signature, supersession,
    /// then the terms.
    /// @param patient The patient who signed.
    /// @param grantee The account allowed access.
    /// @param scope A study key, or `ALL_STUDIES`.
    /// @param purposes Bitmask of PurposeOfUse bits.
    /// @param identified True if identified data may be released.
    /// @param notBefore Unix time from which the grant applies (0 = now).
    /// @param expiresAt Unix time at which the grant ends (0 = never).
    /// @param issuedAt Chain time at which the patient signed.
    /// @param deadline Last unix time at which the signature may be used; at most 30 days after `issuedAt`.
    /// @param signature 65-byte ECDSA signature, or any signature the patient's EIP-1271 wallet accepts.
    function grantBySig(
        address patient,
        address grantee,
        bytes32 scope,
        uint32 purposes,
        bool identified,
        uint48 notBefore,
        uint48 expiresAt,
        uint48 issuedAt,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice As `revoke`, signed by `patient` and relayed by anyone. Never reverts because of
    /// another transaction: a live grant not newer than `issuedAt` is revoked; a tombstone older
    /// than `issuedAt` is moved to `issuedAt`; otherwise nothing changes and `SignatureSuperseded`
    /// is emitted. A change emits `ConsentRevoked` and `SignatureUsed`.
    /// @dev Typed struct: `Revoke(address patient,address grantee,bytes32 scope,uint48 issuedAt,uint256 deadline)`.
    /// @param patient The patient who signed.
    /// @param grantee The account whose access ends.
    /// @param scope A study key, or `ALL_STUDIES`.
    /// @param issuedAt Chain time at which the patient signed.
    /// @param deadline Last unix time at which the signature may be used; at most 30 days after `issuedAt`.
    /// @param signature 65-byte ECDSA signature, or any signature the patient's EIP-1271 wallet accepts.
    function revokeBySig(
        address patient,
        address grantee,
        bytes32 scope,
        uint48 issuedAt,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice As `cancelSignatures`, signed by `patient` and relayed by anyone. If `issuedAt` is
    /// newer than the slot's, it becomes the slot's (`SignaturesCancelled` and `SignatureUsed`);
    /// otherwise nothing changes and `SignatureSuperseded` is emitted.
    /// @dev Typed struct: `Cancel(address patient,address grantee,bytes32 scope,uint48 issuedAt,uint256 deadline)`.
    /// @param patient The patient who signed.
    /// @param grantee The grantee of the slot.
    /// @param scope A study key, or `ALL_STUDIES`.
    /// @param issuedAt Chain time at which the patient signed.
    /// @param deadline Last unix time at which the signature may be used; at most 30 days after `issuedAt`.
    /// @param signature 65-byte ECDSA signature, or any signature the patient's EIP-1271 wallet accepts.
    function cancelBySig(
        address patient,
        address grantee,
        bytes32 scope,
        uint48 issuedAt,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice May `grantee` receive `patient`'s study `studyKey` for `purpose`, now?
    /// @dev Applies the `isPermitted` rule in the contract notes. A purpose index of 32 or more
    /// is never permitted.
    /// @param patient The patient the study belongs to.
    /// @param grantee The account asking.
    /// @param studyKey The study key, or `ALL_STUDIES` to consult the all-studies grant alone.
    /// @param purpose PurposeOfUse bit index (0 TREAT, 1 ETREAT, ...).
    /// @return permitted True if the deciding grant is in force and sets the purpose bit.
    /// @return identified True if permitted and the deciding grant allows identified data.
    function isPermitted(address patient, address grantee, bytes32 studyKey, uint8 purpose)
        external
        view
        returns (bool permitted, bool identified);

    /// @notice The stored slot for (patient, grantee, scope): a grant, a tombstone or zeros.
    /// @param patient The patient.
    /// @param grantee The grantee.
    /// @param scope A study key, or `ALL_STUDIES`.
    /// @return The stored grant, as is (not checked for being in force).
    function getGrant(address patient, address grantee, bytes32 scope) external view returns (Grant memory);

    /// @notice The delegate's active delegation from `patient`; zeros if none (never set,
    /// removed or expired).
    /// @param patient The patient.
    /// @param delegate The delegate.
    /// @return scope The study key it covers, or `ALL_STUDIES`.
    /// @return expiresAt When it ends.
    /// @return delegation Its id.
    function getDelegation(address patient, address delegate)
        external
        view
        returns (bytes32 scope, uint48 expiresAt, uint32 delegation);

    /// @notice Whether `patient` excluded `studyKey` from their all-studies grants.
    /// @param patient The patient.
    /// @param studyKey The study key.
    /// @return True if excluded.
    function isExcluded(address patient, bytes32 studyKey) external view returns (bool);
}
