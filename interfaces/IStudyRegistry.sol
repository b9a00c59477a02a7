// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IStudyRegistry
/// @notice The imaging studies sites hold: who the patient is, which site holds them, and a Merkle
/// root over their content so any released instance can be checked against the chain.
/// @dev A study is keyed by an opaque `studyKey = keccak256(sitePepper ‖ utf8(StudyInstanceUID))`,
/// computed off chain with the site's secret pepper. No personal data is ever stored or emitted.
/// `bytes32(0)` is never a study key: ConsentRegistry uses it for "all my studies".
///
/// Content-root protocol (fixed; `imaging_consent.merkle` builds it in Python):
///   instanceKey = keccak256(sitePepper ‖ utf8(SOPInstanceUID))
///   pixelHash   = sha256(PixelData value bytes, exactly as stored)
///   leaf        = keccak256(bytes.concat(keccak256(abi.encode(instanceKey, pixelHash))))
///                 (OpenZeppelin StandardMerkleTree's double-hashed leaf)
///   node        = keccak256(min(a, b) ‖ max(a, b))   (sorted pairs, as OpenZeppelin MerkleProof)
///   contentRoot = the root of the tree over all the study's leaves; a one-instance study's root
///                 is its leaf and its proof is empty.
/// De-identification does not touch PixelData, so a de-identified copy still verifies.
///
/// Versions: registration is version 1 and each `updateContent` adds one. Only the current root is
/// verified on chain by `verifyInstance`; every earlier root stays in the `StudyRegistered` and
/// `ContentUpdated` events, and a proof against an old root can be checked off chain (or with
/// `AccessLog.verifyRecord`, which is plain `MerkleProof.verify`).
interface IStudyRegistry {
    /// @notice Emitted when a site registers a study (version 1).
    /// @param studyKey Opaque key of the study.
    /// @param patient The study's patient.
    /// @param site The registering site.
    /// @param contentRoot Merkle root over the study's instance leaves.
    /// @param instanceCount Number of instances under the root.
    event StudyRegistered(
        bytes32 indexed studyKey,
        address indexed patient,
        address indexed site,
        bytes32 contentRoot,
        uint32 instanceCount
    );

    // Not indexed on purpose: these fields are read with the event, never searched by, and
    // indexing them would change the event ABI that the audit indexer decodes.
    /* solhint-disable gas-indexed-events */
    /// @notice Emitted when the registering site replaces a study's content root.
    /// @param studyKey Opaque key of the study.
    /// @param version The new version: 2 for the first update, then 3, ...
    /// @param contentRoot The new content root.
    /// @param instanceCount Number of instances under the new root.
    event ContentUpdated(bytes32 indexed studyKey, uint32 version, bytes32 contentRoot, uint32 instanceCount);
    /* solhint-enable gas-indexed-events */

    /// @notice Thrown when registering the reserved key `bytes32(0)`.
    error StudyRegistryZeroStudyKey();

    /// @notice Thrown when registering a study for the zero address.
    error StudyRegistryZeroPatient();

    /// @notice Thrown when a content root is zero or the instance count is zero.
    /// @param contentRoot The rejected content root.
    /// @param instanceCount The rejected instance count.
    error StudyRegistryInvalidContent(bytes32 contentRoot, uint32 instanceCount);

    /// @notice Thrown when registering a key that is already registered.
    /// @param studyKey The key already registered.
    error StudyRegistryStudyExists(bytes32 studyKey);

    /// @notice Thrown when a study key is not registered. AccessLog throws it too.
    /// @param studyKey The unknown key.
    error StudyRegistryUnknownStudy(bytes32 studyKey);

    /// @notice Thrown when `caller` updates a study registered by another site.
    /// @param studyKey The study's key.
    /// @param caller The site that did not register it.
    error StudyRegistryNotStudySite(bytes32 studyKey, address caller);

    /// @notice Thrown when the admin passed to the constructor is the zero address.
    error StudyRegistryZeroAdmin();

    /// @notice Registers a study held by the calling site (version 1).
    /// @dev Caller must hold `SITE_ROLE`.
    /// @param studyKey Opaque key of the study; must be new and non-zero.
    /// @param patient The patient's wallet; it grants consent in ConsentRegistry.
    /// @param contentRoot Merkle root over the study's instance leaves (see the protocol above).
    /// @param instanceCount Number of instances (leaves) under the root; at least 1.
    function registerStudy(bytes32 studyKey, address patient, bytes32 contentRoot, uint32 instanceCount) external;

    /// @notice Replaces the content root of a study, as a new version.
    /// @dev Only the registering site, and only while it still holds `SITE_ROLE`.
    /// @param studyKey Opaque key of a registered study.
    /// @param contentRoot The new Merkle root; must not be zero.
    /// @param instanceCount Number of instances under the new root; at least 1.
    function updateContent(bytes32 studyKey, bytes32 contentRoot, uint32 instanceCount) external;

    /// @notice The registered study. Reverts with `StudyRegistryUnknownStudy` for an unknown key.
    /// @param studyKey Opaque key of a registered study.
    /// @return patient The patient's wallet.
    /// @return site The registering site.
    /// @return contentRoot The current content root.
    /// @return instanceCount The current instance count.
    /// @return registeredAt Block time of registration.
    function studyOf(bytes32 studyKey)
        external
        view
        returns (address patient, address site, bytes32 contentRoot, uint32 instanceCount, uint48 registeredAt);

    /// @notice The study's patient, or the zero address if the key is not registered.
    /// @dev Reads one storage slot; this is what AccessLog calls on every recorded access.
    /// @param studyKey Opaque key of the study.
    /// @return The patient's wallet, or `address(0)`.
    function patientOf(bytes32 studyKey) external view returns (address);

    /// @notice The study's content version: 1 after registration, plus one per update.
    /// Reverts with `StudyRegistryUnknownStudy` for an unknown key.
    /// @param studyKey Opaque key of a registered study.
    /// @return The current version.
    function contentVersionOf(bytes32 studyKey) external view returns (uint32);

    /// @notice Whether `leaf` is an instance of the study's *current* content, by `proof`.
    /// Reverts with `StudyRegistryUnknownStudy` for an unknown key.
    /// @param studyKey Opaque key of a registered study.
    /// @param leaf The double-hashed leaf of (instanceKey, pixelHash).
    /// @param proof Sibling hashes from the leaf up to the root (empty for a one-instance study).
    /// @return True if the proof leads from `leaf` to the study's current content root.
    function verifyInstance(bytes32 studyKey, bytes32 leaf, bytes32[] calldata proof) external view returns (bool);
}
