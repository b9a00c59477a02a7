// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsentRegistry} from "./IConsentRegistry.sol";
import {IStudyRegistry} from "./IStudyRegistry.sol";

/// @title IAccessLog
/// @notice The audit trail of every release and every refusal of imaging studies, written by the
/// gateways of the sites that hold them. Patients find their records by their indexed address.
/// @dev The log is events only, apart from who may write (gateways and emergency clinicians, per
/// site) and break-glass bookkeeping. It has no admin.
///
/// Trust model:
/// - A site (an account holding StudyRegistry's `SITE_ROLE`) binds gateways and emergency
///   clinicians to itself. A gateway belongs to at most one site; another site cannot take it over.
/// - A gateway is trusted only for its own site's studies: it records for a study key looked up in
///   its site's StudyRegistry namespace, so it cannot write for, or learn the patient of, another
///   site's studies. The consent answer (`permitted`, `identified`) is computed on chain by
///   ConsentRegistry, never supplied by the gateway.
/// - A break-glass record needs the emergency clinician's own EIP-712 signature over the site, the
///   study, the request id and a commitment to the reason (ECDSA, or EIP-1271 for a contract
///   account). The gateway relays it; it can neither forge one, use another site's clinician,
///   replay a request id, nor exceed `BREAK_GLASS_LIMIT` accesses per clinician and site within
///   a `BREAK_GLASS_WINDOW` that opens at the first access after the previous window closed.
///
/// Two modes:
/// - One record per transaction: `recordAccess` asks ConsentRegistry on chain and emits
///   `AccessGranted` or `AccessDenied`; `recordBreakGlass` emits `BreakGlassAccess`.
/// - Batched: the gateway keeps records in its outbox and anchors the Merkle root of many of them
///   with `anchorBatch`. Each record stays provable against the anchored root:
///
///   leaf = keccak256(bytes.concat(keccak256(abi.encode(AccessRecord))))
///   i.e. ten 32-byte words (studyKey, patient, accessor, purpose, permitted, identified,
///   breakGlass, requestId, gateway, timestamp); then the same sorted-pair StandardMerkleTree as
///   content roots (`node = keccak256(min(a, b) ‖ max(a, b))`, a one-record batch's root is its
///   leaf). `timestamp` is the gateway's decision time (unix seconds). `recordLeaf` computes a
///   leaf and `verifyRecord` checks a proof, refusing a record that names another gateway.
///
/// Batch ids are not stored: a mapping would cost a new slot (22,100 gas) on every anchor. A reused
/// `batchId`, or a root anchored twice, is visible in the `BatchAnchored` events and is flagged by
/// the off-chain indexer. A root counts as anchored by `gateway` once its `BatchAnchored` event is
/// in the chain; `verifyRecord` checks only the proof, not the anchoring.
interface IAccessLog {
    /// @notice One access record, as hashed into a batch leaf (see the contract notes).
    /// @param studyKey Opaque key of the study.
    /// @param patient The study's patient.
    /// @param accessor The account that asked for the study.
    /// @param purpose PurposeOfUse bit index (as in ConsentRegistry).
    /// @param permitted True if the study was released, false if refused.
    /// @param identified True if identified data was released.
    /// @param breakGlass True for an emergency access without consent.
    /// @param requestId The gateway's unique id for the request.
    /// @param gateway The gateway that decided, and that anchors the batch.
    /// @param timestamp Unix time of the decision.
    struct AccessRecord {
        bytes32 studyKey;
        address patient;
        address accessor;
        uint8 purpose;
        bool permitted;
        bool identified;
        bool breakGlass;
        bytes32 requestId;
        address gateway;
        uint48 timestamp;
    }

    /// @notice Emitted when a gateway records an access that consent permits.
    /// @param studyKey Opaque key of the study.
    /// @param patient The study's patient.
    /// @param accessor The account that asked for the study.
    /// @param purpose PurposeOfUse bit index asked for.
    /// @param identified True if the deciding grant allows identified data; false: de-identified only.
    /// @param requestId The gateway's unique id for the request.
    /// @param gateway The gateway that recorded the access.
    event AccessGranted(
        bytes32 indexed studyKey,
        address indexed patient,
        address indexed accessor,
        uint8 purpose,
        bool identified,
        bytes32 requestId,
        address gateway
    );

    /// @notice Emitted when a gateway records a refused access (no consent for that purpose now).
    /// @param studyKey Opaque key of the study.
    /// @param patient The study's patient.
    /// @param accessor The account that asked for the study.
    /// @param purpose PurposeOfUse bit index asked for.
    /// @param requestId The gateway's unique id for the request.
    /// @param gateway The gateway that recorded the refusal.
    event AccessDenied(
        bytes32 indexed studyKey,
        address indexed patient,
        address indexed accessor,
        uint8 purpose,
        bytes32 requestId,
        address gateway
    );

    /// @notice Emitted when an emergency clinician's signed break-glass access is recorded.
    /// @param studyKey Opaque key of the study.
    /// @param patient The study's patient, who is shown the access.
    /// @param clinician The emergency clinician who signed.
    /// @param requestId The request id, single-use per clinician.
    /// @param reasonCommitment Commitment to the stated reason (keyed hash, kept off chain).
    /// @param gateway The gateway that relayed it.
    event BreakGlassAccess(
        bytes32 indexed studyKey,
        address indexed patient,
        address indexed clinician,
        bytes32 requestId,
        bytes32 reasonCommitment,
        address gateway
    );

    /// @notice Emitted when a gateway anchors the Merkle root of a batch of access records.
    /// @param root The Merkle root over the batch's record leaves.
    /// @param count Number of records in the batch.
    /// @param batchId The gateway's id for the batch.
    /// @param gateway The gateway that anchored it.
    event BatchAnchored(bytes32 indexed root, uint32 count, bytes32 indexed batchId, address indexed gateway);

    // Not indexed on purpose: read with the event, never searched by.
    /* solhint-disable gas-indexed-events */

    /// @notice Emitted when a site binds a gateway to itself or releases it.
    /// @param site The site.
    /// @param gateway The gateway.
    /// @param allowed True if bound, false if released.
    event GatewaySet(address indexed site, address indexed gateway, bool allowed);

    /// @notice Emitted when a site appoints or removes an emergency clinician.
    /// @param site The site.
    /// @param clinician The clinician.
    /// @param allowed True if appointed, false if removed.
    event EmergencyClinicianSet(address indexed site, address indexed clinician, bool allowed);

    /* solhint-enable gas-indexed-events */

    /// @notice Thrown when deploying with a zero registry address, or naming the zero address as
    /// gateway or clinician.
    error AccessLogZeroAddress();

    /// @notice Thrown when an account without StudyRegistry's `SITE_ROLE` acts as a site.
    /// @param caller The account.
    error AccessLogNotSite(address caller);

    /// @notice Thrown when an account that is no site's gateway records or anchors.
    /// @param caller The account.
    error AccessLogNotGateway(address caller);

    /// @notice Thrown when a site tries to bind or release a gateway bound to another site.
    /// @param gateway The gateway.
    /// @param site The site it is bound to.
    error AccessLogGatewayOfOtherSite(address gateway, address site);

    /// @notice Thrown when an access names the zero address as accessor.
    error AccessLogZeroAccessor();

    /// @notice Thrown when a break-glass access names someone who is not the site's emergency clinician.
    /// @param site The gateway's site.
    /// @param clinician The account named.
    error AccessLogNotEmergency(address site, address clinician);

    /// @notice Thrown when a break-glass signature is used after its deadline.
    /// @param deadline The signed deadline (unix time), already past.
    error AccessLogExpiredSignature(uint256 deadline);

    /// @notice Thrown when a break-glass signature was not made by the clinician over this exact message.
    /// @param clinician The clinician the signature was checked against.
    error AccessLogInvalidSigner(address clinician);

    /// @notice Thrown when a clinician's request id was already used for a break-glass access.
    /// @param requestId The request id.
    error AccessLogRequestUsed(bytes32 requestId);

    /// @notice Thrown when a clinician already used `BREAK_GLASS_LIMIT` break-glass accesses at a
    /// site in the current window.
    /// @param clinician The clinician.
    /// @param windowEndsAt The first second of the next window.
    error AccessLogBreakGlassLimit(address clinician, uint48 windowEndsAt);

    /// @notice Thrown when a break-glass access has no reason commitment.
    /// @param requestId The request's id.
    error AccessLogZeroReason(bytes32 requestId);

    /// @notice Thrown when anchoring a zero root.
    /// @param batchId The batch's id.
    error AccessLogZeroRoot(bytes32 batchId);

    /// @notice Thrown when anchoring a batch of zero records.
    /// @param batchId The batch's id.
    error AccessLogEmptyBatch(bytes32 batchId);

    /// @notice Binds `gateway` to the caller's site, or releases it.
    /// @dev Caller needs StudyRegistry's `SITE_ROLE` (`AccessLogNotSite`). A gateway bound to
    /// another site reverts with `AccessLogGatewayOfOtherSite`.
    /// @param gateway The gateway's account.
    /// @param allowed True to bind, false to release.
    function setGateway(address gateway, bool allowed) external;

    /// @notice Appoints or removes an emergency clinician of the caller's site.
    /// @dev Caller needs StudyRegistry's `SITE_ROLE` (`AccessLogNotSite`).
    /// @param clinician The clinician's account.
    /// @param allowed True to appoint, false to remove.
    function setEmergencyClinician(address clinician, bool allowed) external;

    /// @notice Records a decision on one access to one of the caller's site's studies: asks
    /// ConsentRegistry, emits `AccessGranted` or `AccessDenied`, and returns the answer.
    /// @dev Caller must be a gateway (`AccessLogNotGateway`); the study must be in its site's
    /// namespace (`StudyRegistryUnknownStudy(site, studyKey)`).
    /// @param studyKey Opaque key of the study.
    /// @param accessor The account asking; not the zero address.
    /// @param purpose PurposeOfUse bit index.
    /// @param requestId The gateway's unique id for the request.
    /// @return permitted True if consent permits the access now.
    /// @return identified True if permitted with identified data; false: de-identified only.
    function recordAccess(bytes32 studyKey, address accessor, uint8 purpose, bytes32 requestId)
        external
        returns (bool permitted, bool identified);

    /// @notice Records an emergency access without consent, signed by the site's emergency
    /// clinician and relayed by one of the site's gateways. Emits `BreakGlassAccess`.
    /// @dev Typed struct: `BreakGlass(address site,bytes32 studyKey,bytes32 requestId,
    /// bytes32 reasonCommitment,uint256 deadline)`, domain ("AccessLog", "2"). Checks in order:
    /// gateway, reason, deadline, study in the gateway's site, clinician of that site, signature,
    /// request id unused by the clinician, window limit.
    /// @param studyKey Opaque key of the study.
    /// @param clinician The emergency clinician who signed.
    /// @param requestId The request id; single-use per clinician.
    /// @param reasonCommitment Commitment to the stated reason; not zero.
    /// @param deadline Last unix time at which the signature may be used.
    /// @param signature 65-byte ECDSA signature, or any signature the clinician's EIP-1271 wallet accepts.
    function recordBreakGlass(
        bytes32 studyKey,
        address clinician,
        bytes32 requestId,
        bytes32 reasonCommitment,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Anchors the Merkle root of a batch of access records the caller (a gateway) decided.
    /// @param root The Merkle root; not zero.
    /// @param count Number of records; not zero.
    /// @param batchId The gateway's id for the batch.
    function anchorBatch(bytes32 root, uint32 count, bytes32 batchId) external;

    /// @notice What `recordAccess` would decide now for a study of `site`, without recording.
    /// @dev Reverts with `StudyRegistryUnknownStudy(site, studyKey)` for an unknown study.
    /// @param site The site whose namespace holds the study.
    /// @param studyKey Opaque key of the study.
    /// @param accessor The account asking.
    /// @param purpose PurposeOfUse bit index.
    /// @return patient The study's patient.
    /// @return contentRoot The study's current content root.
    /// @return permitted True if consent permits the access now.
    /// @return identified True if permitted with identified data.
    function checkAccess(address site, bytes32 studyKey, address accessor, uint8 purpose)
        external
        view
        returns (address patient, bytes32 contentRoot, bool permitted, bool identified);

    /// @notice The site a gateway is bound to.
    /// @param gateway The account.
    /// @return The site, or the zero address if `gateway` is no gateway.
    function siteOf(address gateway) external view returns (address);

    /// @notice Whether `clinician` is an emergency clinician of `site`.
    /// @param site The site.
    /// @param clinician The account.
    /// @return True if appointed.
    function isEmergencyClinician(address site, address clinician) external view returns (bool);

    /// @notice The clinician's break-glass window at `site`, as stored.
    /// @dev The window is over once `block.timestamp >= windowStart + BREAK_GLASS_WINDOW`; the next
    /// access then opens a new one.
    /// @param site The site.
    /// @param clinician The clinician.
    /// @return windowStart Start of the latest window (0 if none yet).
    /// @return used Break-glass accesses recorded in that window.
    function breakGlassUsage(address site, address clinician) external view returns (uint48 windowStart, uint16 used);

    /// @notice The batch leaf of an access record.
    /// @param record The record.
    /// @return `keccak256(bytes.concat(keccak256(abi.encode(record))))`.
    function recordLeaf(AccessRecord calldata record) external pure returns (bytes32);

    /// @notice Whether `record`, decided by `gateway`, is in the batch with Merkle root `root`.
    /// @param root The batch root, as anchored by `gateway`.
    /// @param gateway The gateway that anchored `root`.
    /// @param record The record.
    /// @param proof The sibling hashes from the record's leaf to the root.
    /// @return False unless `record.gateway == gateway` and the proof leads from its leaf to `root`.
    function verifyRecord(bytes32 root, address gateway, AccessRecord calldata record, bytes32[] calldata proof)
        external
        pure
        returns (bool);

    /// @notice The ConsentRegistry this log asks on every access.
    /// @return The registry.
    function consentRegistry() external view returns (IConsentRegistry);

    /// @notice The StudyRegistry that maps site study keys to patients.
    /// @return The registry.
    function studyRegistry() external view returns (IStudyRegistry);
}
